package keystore

import "github.com/godbus/dbus/v5"

// The keystore's D-Bus API (docs/dbus-api.md, com.amos.Keystore1).
const (
	Name  = "com.amos.Keystore1"
	Path  = dbus.ObjectPath("/com/amos/Keystore1")
	Iface = "com.amos.Keystore1"

	// ErrNoSuchKeyName is the error of GetKey and Sign for an alias the caller has no
	// key under.
	ErrNoSuchKeyName = Iface + ".Error.NoSuchKey"
	// ErrKeyExistsName is the error of GenerateAttestedKey for an alias the caller
	// already has a key under: a key is never replaced.
	ErrKeyExistsName = Iface + ".Error.KeyExists"
	// ErrAccessDeniedName refuses a caller whose uid may not use the keystore.
	ErrAccessDeniedName = "org.freedesktop.DBus.Error.AccessDenied"
	// ErrInvalidArgsName refuses an alias, challenge or digest of the wrong form.
	ErrInvalidArgsName = "org.freedesktop.DBus.Error.InvalidArgs"
	// ErrFailedName is any other failure of the keystore.
	ErrFailedName = "org.freedesktop.DBus.Error.Failed"
)

// Limits of the arguments (docs/dbus-api.md).
const (
	// MaxAliasLen bounds an alias: 1 to 64 of [A-Za-z0-9._-], not starting with '.'.
	MaxAliasLen = 64
	// MaxChallengeLen bounds an attestation challenge, as Android's KeyMint does.
	MaxChallengeLen = 128
	// DigestSize is the size of the SHA-256 digest that Sign takes.
	DigestSize = 32
	// PublicKeySize is the size of a public key: the uncompressed SEC1 point of P-256.
	PublicKeySize = 65
)

// ValidAlias reports whether alias is a key alias of the API: 1 to 64 of
// [A-Za-z0-9._-], not starting with '.'.
func ValidAlias(alias string) bool {
	if len(alias) < 1 || len(alias) > MaxAliasLen || alias[0] == '.' {
		return false
	}
	for i := 0; i < len(alias); i++ {
		c := alias[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
