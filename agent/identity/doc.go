// Package identity is the device's key and key_dir: the device key (a file key,
// Ed25519 or P-256, generated at the first start, or a key of the platform's hardware
// keystore with its attestation chain), the maker certificate, and the epoch file
// (docs/files.md).
package identity
