// Package selftest is `amosd selftest`: it checks, without changing anything, what an
// OEM engineer must get right on a handset, and says how to fix what is wrong.
package selftest
