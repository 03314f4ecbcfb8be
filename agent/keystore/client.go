package keystore

import (
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"amos.example/amosd/proof"
	"amos.example/amosd/sources"
	"github.com/godbus/dbus/v5"
)

// Errors of the client, for errors.Is; the message after them says what happened.
var (
	// ErrUnavailable: the bus cannot be reached, nobody owns com.amos.Keystore1, or it
	// did not answer in time. Trying again later may help.
	ErrUnavailable = errors.New("keystore unavailable")
	// ErrNoKey: the keystore has no key under the alias for this uid.
	ErrNoKey = errors.New("no such key in the keystore")
	// ErrKeyExists: GenerateAttestedKey for an alias that already has a key.
	ErrKeyExists = errors.New("the keystore already has a key under this alias")
	// ErrAccessDenied: the keystore (or the bus policy) refuses this uid.
	ErrAccessDenied = errors.New("the keystore refuses this caller")
	// ErrBadAnswer: the keystore answered something that breaks the API (a public key
	// that is no P-256 point, a chain too long for a genesis or for another key, a
	// signature that is not ASN.1 DER).
	ErrBadAnswer = errors.New("invalid answer of the keystore")
	// ErrKeystore: any other error the keystore answered (its message follows).
	ErrKeystore = errors.New("keystore error")
)

// Bounds of the calls, unless Options say otherwise. KeyMint in a StrongBox takes
// seconds to generate and attest a key; signing takes a fraction of a second.
const (
	DefaultTimeout         = 10 * time.Second
	DefaultGenerateTimeout = 60 * time.Second
)

// Options say where the keystore is and how long to wait for it.
type Options struct {
	// Bus is "system", "session" or a D-Bus address, as amosd's configuration key bus.
	Bus string
	// Timeout bounds each call, and each connection (0: DefaultTimeout).
	Timeout time.Duration
	// GenerateTimeout bounds GenerateAttestedKey (0: DefaultGenerateTimeout).
	GenerateTimeout time.Duration
}

func (o Options) timeout() time.Duration {
	if o.Timeout > 0 {
		return o.Timeout
	}
	return DefaultTimeout
}

func (o Options) generateTimeout() time.Duration {
	if o.GenerateTimeout > 0 {
		return o.GenerateTimeout
	}
	return DefaultGenerateTimeout
}

// Info is what the keystore says of itself.
type Info struct {
	// Implementation names the implementation and its version.
	Implementation string
	// SecurityLevel is where the keys live: "strongbox", "tee" or "software".
	SecurityLevel string
}

// Key is a key of the keystore: its public key and its attestation chain (DER
// certificates, leaf first; empty if the implementation has none).
type Key struct {
	PublicKey proof.PublicKey
	Chain     [][]byte
}

// Client is a connection to com.amos.Keystore1. godbus never reconnects: a Client is
// for one task (the factory's identity command, selftest); Signer dials for each
// signature.
type Client struct {
	o    Options
	conn *dbus.Conn
	obj  dbus.BusObject
}

// Dial connects to the bus of o. The connection lives until Close or until ctx is
// done: give each call its own deadline, not the connection. A bus that cannot be reached within o.Timeout is ErrUnavailable; whether the
// keystore is there shows at the first call.
func Dial(ctx context.Context, o Options) (*Client, error) {
	conn, err := dial(ctx, o.Bus, o.timeout())
	if err != nil {
		return nil, fmt.Errorf("%w: bus %s: %w", ErrUnavailable, o.Bus, err)
	}
	return &Client{o: o, conn: conn, obj: conn.Object(Name, Path)}, nil
}

// dial connects to bus, giving up after timeout (a bus that accepts the connection but
// never answers the handshake must not hang amosd).
func dial(ctx context.Context, bus string, timeout time.Duration) (*dbus.Conn, error) {
	type result struct {
		conn *dbus.Conn
		err  error
	}
	done := make(chan result, 1)
	go func() {
		conn, err := sources.Dial(ctx, bus)
		done <- result{conn, err}
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case r := <-done:
		return r.conn, r.err
	case <-t.C:
	case <-ctx.Done():
	}
	go func() { // the late connection, if it comes, is closed
		if r := <-done; r.conn != nil {
			r.conn.Close()
		}
	}()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return nil, fmt.Errorf("no connection within %s", timeout)
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// call calls method within d and stores the answer in out.
func (c *Client) call(ctx context.Context, d time.Duration, method string, out []any, args ...any) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	call := c.obj.CallWithContext(ctx, Iface+"."+method, 0, args...)
	if err := callError(ctx, method, d, call.Err); err != nil {
		return err
	}
	if err := call.Store(out...); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrBadAnswer, method, err)
	}
	return nil
}

// callError maps the error of a call to the client's errors.
func callError(ctx context.Context, method string, d time.Duration, err error) error {
	if err == nil {
		return nil
	}
	var derr dbus.Error
	if !errors.As(err, &derr) {
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("%w: %s: no answer from %s within %s: %w", ErrUnavailable, method, Name, d, context.DeadlineExceeded)
		}
		return fmt.Errorf("%w: %s: %w", ErrUnavailable, method, err)
	}
	msg := derr.Name
	if len(derr.Body) > 0 {
		if s, ok := derr.Body[0].(string); ok {
			msg = s
		}
	}
	switch derr.Name {
	case ErrNoSuchKeyName:
		return fmt.Errorf("%w: %s", ErrNoKey, msg)
	case ErrKeyExistsName:
		return fmt.Errorf("%w: %s", ErrKeyExists, msg)
	case ErrAccessDeniedName:
		return fmt.Errorf("%w: %s: %s", ErrAccessDenied, method, msg)
	case "org.freedesktop.DBus.Error.ServiceUnknown", "org.freedesktop.DBus.Error.NameHasNoOwner",
		"org.freedesktop.DBus.Error.NoReply", "org.freedesktop.DBus.Error.Disconnected":
		return fmt.Errorf("%w: %s: %s (is the keystore service running?)", ErrUnavailable, method, msg)
	}
	return fmt.Errorf("%w: %s: %s: %s", ErrKeystore, method, derr.Name, msg)
}

// Info asks the keystore what it is.
func (c *Client) Info(ctx context.Context) (Info, error) {
	var i Info
	err := c.call(ctx, c.o.timeout(), "Info", []any{&i.Implementation, &i.SecurityLevel})
	return i, err
}

// GenerateAttestedKey makes a new P-256 key under alias, attested with challenge
// (proof.AttestationChallenge of the maker and serial tag). ErrKeyExists if alias has
// a key: keys are never replaced.
func (c *Client) GenerateAttestedKey(ctx context.Context, alias string, challenge []byte) (Key, error) {
	var pub []byte
	var chain [][]byte
	if err := c.call(ctx, c.o.generateTimeout(), "GenerateAttestedKey", []any{&pub, &chain}, alias, challenge); err != nil {
		return Key{}, err
	}
	return parseKey("GenerateAttestedKey", pub, chain)
}

// GetKey returns the key under alias; ErrNoKey if there is none.
func (c *Client) GetKey(ctx context.Context, alias string) (Key, error) {
	var pub []byte
	var chain [][]byte
	if err := c.call(ctx, c.o.timeout(), "GetKey", []any{&pub, &chain}, alias); err != nil {
		return Key{}, err
	}
	return parseKey("GetKey", pub, chain)
}

// Sign signs the SHA-256 digest with the key under alias and returns the signature as
// r‖s with a low s (proof.SignatureFromASN1 of the keystore's DER signature).
func (c *Client) Sign(ctx context.Context, alias string, digest [DigestSize]byte) (proof.Signature, error) {
	var der []byte
	if err := c.call(ctx, c.o.timeout(), "Sign", []any{&der}, alias, digest[:]); err != nil {
		return proof.Signature{}, err
	}
	sig, err := proof.SignatureFromASN1(der)
	if err != nil {
		return proof.Signature{}, fmt.Errorf("%w: Sign: %w", ErrBadAnswer, err)
	}
	return sig, nil
}

// parseKey checks a key as the keystore gave it: a P-256 point, and a chain that a
// genesis can carry, whose leaf certifies that point.
func parseKey(method string, pub []byte, chain [][]byte) (Key, error) {
	k, err := proof.NewPublicKey(proof.KeyP256, pub)
	if err != nil {
		return Key{}, fmt.Errorf("%w: %s: public key: %w", ErrBadAnswer, method, err)
	}
	total := 0
	for i, c := range chain {
		if len(c) == 0 {
			return Key{}, fmt.Errorf("%w: %s: certificate %d of the chain is empty", ErrBadAnswer, method, i)
		}
		total += len(c)
	}
	switch {
	case len(chain) > proof.MaxAttestationCerts:
		return Key{}, fmt.Errorf("%w: %s: a chain of %d certificates, a genesis carries at most %d", ErrBadAnswer, method, len(chain), proof.MaxAttestationCerts)
	case total > proof.MaxAttestationBytes:
		return Key{}, fmt.Errorf("%w: %s: a chain of %d bytes, a genesis carries at most %d", ErrBadAnswer, method, total, proof.MaxAttestationBytes)
	}
	if len(chain) > 0 {
		leaf, err := x509.ParseCertificate(chain[0])
		if err != nil {
			return Key{}, fmt.Errorf("%w: %s: leaf certificate: %w", ErrBadAnswer, method, err)
		}
		want, _ := k.ECDSA()
		if got, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || !got.Equal(want) {
			return Key{}, fmt.Errorf("%w: %s: the leaf certificate attests another key than the public key %s", ErrBadAnswer, method, k)
		}
	}
	return Key{PublicKey: k, Chain: chain}, nil
}
