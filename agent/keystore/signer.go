package keystore

import (
	"context"
	"crypto/sha256"
	"fmt"

	"amos.example/amosd/proof"
)

// Signer is a proof.Signer whose private key stays in the keystore. Each Sign
// connects to the bus anew, bounded by Options.Timeout: amosd signs a few records a
// day, and a fresh connection cannot be one that a restart of the bus left dead
// (godbus never reconnects).
type Signer struct {
	o     Options
	alias string
	key   Key
}

// NewSigner reads the key under alias (GetKey over c) and returns its Signer, which
// signs over new connections to c's bus. ErrNoKey if the keystore has none: the
// factory makes it (amosd identity --maker-id ID --serial-tag HEX).
func NewSigner(ctx context.Context, c *Client, alias string) (*Signer, error) {
	k, err := c.GetKey(ctx, alias)
	if err != nil {
		return nil, err
	}
	return &Signer{o: c.o, alias: alias, key: k}, nil
}

// PublicKey implements proof.Signer.
func (s *Signer) PublicKey() proof.PublicKey { return s.key.PublicKey }

// Chain returns the key's attestation chain, DER leaf first (empty if the keystore
// has none).
func (s *Signer) Chain() [][]byte { return s.key.Chain }

// Alias returns the alias of the key.
func (s *Signer) Alias() string { return s.alias }

// Sign implements proof.Signer: the keystore signs SHA-256 of message.
func (s *Signer) Sign(message []byte) (proof.Signature, error) {
	// The connection is not bound to the call's deadline (godbus would close it under
	// the call, and the error would not say it was the deadline); Close ends it.
	c, err := Dial(context.Background(), s.o)
	if err != nil {
		return proof.Signature{}, fmt.Errorf("sign with keystore key %q: %w", s.alias, err)
	}
	defer c.Close()
	sig, err := c.Sign(context.Background(), s.alias, sha256.Sum256(message))
	if err != nil {
		return proof.Signature{}, fmt.Errorf("sign with keystore key %q: %w", s.alias, err)
	}
	return sig, nil
}
