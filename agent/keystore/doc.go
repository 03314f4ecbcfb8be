// Package keystore is amosd's client of com.amos.Keystore1, the platform's hardware
// keystore on D-Bus (docs/dbus-api.md): it generates and reads attested ECDSA P-256 keys
// and signs records with them as a proof.Signer.
package keystore
