// Package identity is the device's key_dir: the Ed25519 key (generated at the first
// start or by the factory), the maker certificate, and the epoch file (docs/files.md).
package identity
