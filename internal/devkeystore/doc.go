// Package devkeystore is the DEVELOPMENT reference implementation of com.amos.Keystore1
// (amos-keystored): software P-256 keys under a state directory and attestation chains
// from a devattest authority, for tests and the demo only, never on a handset.
package devkeystore
