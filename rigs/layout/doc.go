// Package layout holds the test that keeps the repository's boundaries: what each
// binary links, what the libraries import, and how large a package may grow.
package layout
