package keystore_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"amos.example/amosd/agent/config"
	"amos.example/amosd/agent/keystore"
	"amos.example/amosd/internal/devattest"
	"amos.example/amosd/proof"
	"amos.example/amosd/rigs/keystoretest"
	"amos.example/amosd/rigs/testenv"
	"amos.example/amosd/sources"
)

const alias = "amosd-device"

func dial(t *testing.T, bus string, o keystore.Options) *keystore.Client {
	t.Helper()
	o.Bus = bus
	c, err := keystore.Dial(testenv.Context(t, time.Minute), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestGenerateGetSign runs the whole API against the development keystore on a real
// dbus-daemon: a key is absent, generated with its chain, not generated twice, read
// back, and signs what its public key verifies.
func TestGenerateGetSign(t *testing.T) {
	bus := testenv.StartBus(t)
	ks := keystoretest.Start(t, bus)
	ctx := testenv.Context(t, time.Minute)
	c := dial(t, bus.Address, keystore.Options{})

	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(info.Implementation, "DEVELOPMENT") || info.SecurityLevel != "software" {
		t.Fatalf("Info: %+v, want a DEVELOPMENT implementation at security level software", info)
	}
	if _, err := c.GetKey(ctx, alias); !errors.Is(err, keystore.ErrNoKey) {
		t.Fatalf("GetKey before any key: %v, want ErrNoKey", err)
	}
	if _, err := keystore.NewSigner(ctx, c, alias); !errors.Is(err, keystore.ErrNoKey) {
		t.Fatalf("NewSigner before any key: %v, want ErrNoKey", err)
	}

	var tag [32]byte
	tag[0] = 7
	challenge := proof.AttestationChallenge("acme", tag)
	k, err := c.GenerateAttestedKey(ctx, alias, challenge)
	if err != nil {
		t.Fatal(err)
	}
	if k.PublicKey.Type() != proof.KeyP256 || len(k.Chain) != 3 {
		t.Fatalf("generated a %v key with a chain of %d certificates, want p256 and 3", k.PublicKey.Type(), len(k.Chain))
	}
	verifyChain(t, k.Chain, ks.Authority)
	if _, err := c.GenerateAttestedKey(ctx, alias, challenge); !errors.Is(err, keystore.ErrKeyExists) {
		t.Fatalf("second GenerateAttestedKey: %v, want ErrKeyExists", err)
	}
	got, err := c.GetKey(ctx, alias)
	if err != nil {
		t.Fatal(err)
	}
	if got.PublicKey != k.PublicKey || len(got.Chain) != len(k.Chain) || !bytes.Equal(got.Chain[0], k.Chain[0]) {
		t.Fatalf("GetKey returned another key or chain than GenerateAttestedKey")
	}

	s, err := keystore.NewSigner(ctx, c, alias)
	if err != nil {
		t.Fatal(err)
	}
	if s.PublicKey() != k.PublicKey || len(s.Chain()) != 3 || s.Alias() != alias {
		t.Fatalf("signer: key %s, chain %d, alias %q", s.PublicKey(), len(s.Chain()), s.Alias())
	}
	for i := range 20 { // low s every time, whatever the keystore's s
		msg := []byte("record " + string(rune('a'+i)))
		sig, err := s.Sign(msg)
		if err != nil {
			t.Fatal(err)
		}
		if !k.PublicKey.Verify(msg, sig) {
			t.Fatalf("signature %d does not verify", i)
		}
	}

	// A whole genesis, as amosd mints it: signed through proof, carrying the chain.
	rec := &proof.Record{DeviceID: k.PublicKey.DeviceID(), Epoch: 1, Seq: 1, MintedAt: 1_800_000_000,
		Body: &proof.Genesis{PublicKey: k.PublicKey, Reason: proof.ReasonFirstStart, Attestation: s.Chain()}}
	enc, err := rec.Sign(s)
	if err != nil {
		t.Fatal(err)
	}
	back, err := proof.Decode(enc)
	if err != nil {
		t.Fatal(err)
	}
	if g, ok := back.Body.(*proof.Genesis); !ok || len(g.Attestation) != 3 {
		t.Fatalf("the genesis does not carry the chain: %+v", back.Body)
	}
	if err := back.Verify(k.PublicKey); err != nil {
		t.Fatal(err)
	}

	// Argument errors of the API.
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"alias with a slash", func() error { _, err := c.GetKey(ctx, "../x"); return err }},
		{"empty challenge", func() error { _, err := c.GenerateAttestedKey(ctx, "other", nil); return err }},
		{"long challenge", func() error { _, err := c.GenerateAttestedKey(ctx, "other", make([]byte, 129)); return err }},
	} {
		if err := tc.call(); !errors.Is(err, keystore.ErrKeystore) || !strings.Contains(err.Error(), keystore.ErrInvalidArgsName) {
			t.Errorf("%s: %v, want %s", tc.name, err, keystore.ErrInvalidArgsName)
		}
	}
}

// verifyChain checks that chain is the leaf, the intermediate and the root of a.
func verifyChain(t *testing.T, chain [][]byte, a *devattest.Authority) {
	t.Helper()
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(a.Root())
	leaf, err := x509.ParseCertificate(chain[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, der := range chain[1:] {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Fatalf("the chain does not verify to the development root: %v", err)
	}
}

// TestRefusesUID: a uid the keystore does not allow is refused, whatever it calls.
func TestRefusesUID(t *testing.T) {
	bus := testenv.StartBus(t)
	keystoretest.Start(t, bus, 4242) // not this process's uid
	ctx := testenv.Context(t, time.Minute)
	c := dial(t, bus.Address, keystore.Options{})
	if _, err := c.Info(ctx); !errors.Is(err, keystore.ErrAccessDenied) || !strings.Contains(err.Error(), "may not call") {
		t.Fatalf("Info: %v, want ErrAccessDenied", err)
	}
	if _, err := c.GenerateAttestedKey(ctx, alias, []byte("x")); !errors.Is(err, keystore.ErrAccessDenied) {
		t.Fatalf("GenerateAttestedKey: %v, want ErrAccessDenied", err)
	}
}

// TestUnavailable: no bus, or nobody owning the name, is ErrUnavailable, at once.
func TestUnavailable(t *testing.T) {
	ctx := testenv.Context(t, time.Minute)
	if _, err := keystore.Dial(ctx, keystore.Options{Bus: "unix:path=" + t.TempDir() + "/none"}); !errors.Is(err, keystore.ErrUnavailable) {
		t.Fatalf("Dial of a bus that is not there: %v, want ErrUnavailable", err)
	}
	bus := testenv.StartBus(t)
	c := dial(t, bus.Address, keystore.Options{})
	start := time.Now()
	if _, err := c.GetKey(ctx, alias); !errors.Is(err, keystore.ErrUnavailable) || !strings.Contains(err.Error(), "running") {
		t.Fatalf("GetKey without a keystore: %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > keystore.DefaultTimeout/2 {
		t.Fatalf("took %s to find that nobody owns the name", d)
	}
}

// fakeKeystore owns com.amos.Keystore1 on bus with the given methods, for answers and
// silences the real one never gives.
func fakeKeystore(t *testing.T, bus *testenv.Bus, methods map[string]any) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	conn, err := sources.Dial(ctx, bus.Address)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); conn.Close() })
	if err := conn.ExportMethodTable(methods, keystore.Path, keystore.Iface); err != nil {
		t.Fatal(err)
	}
	if reply, err := conn.RequestName(keystore.Name, dbus.NameFlagDoNotQueue); err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("request %s: %v %v", keystore.Name, reply, err)
	}
}

// TestTimeouts: a keystore that never answers costs each call its timeout, and the
// signer's signature fails with ErrUnavailable instead of hanging amosd.
func TestTimeouts(t *testing.T) {
	bus := testenv.StartBus(t)
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := priv.PublicKey.Bytes()
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	fakeKeystore(t, bus, map[string]any{
		"GetKey": func(string) ([]byte, [][]byte, *dbus.Error) { return pub, nil, nil },
		"Sign":   func(string, []byte) ([]byte, *dbus.Error) { <-release; return nil, nil },
		"Info":   func() (string, string, *dbus.Error) { <-release; return "", "", nil },
		"GenerateAttestedKey": func(string, []byte) ([]byte, [][]byte, *dbus.Error) {
			<-release
			return nil, nil, nil
		},
	})
	ctx := testenv.Context(t, time.Minute)
	const timeout = 300 * time.Millisecond
	c := dial(t, bus.Address, keystore.Options{Timeout: timeout, GenerateTimeout: 2 * timeout})
	for _, tc := range []struct {
		name string
		max  time.Duration
		call func() error
	}{
		{"Info", timeout, func() error { _, err := c.Info(ctx); return err }},
		{"GenerateAttestedKey", 2 * timeout, func() error { _, err := c.GenerateAttestedKey(ctx, alias, []byte("x")); return err }},
		{"Signer.Sign", timeout, func() error {
			s, err := keystore.NewSigner(ctx, c, alias)
			if err != nil {
				return err
			}
			_, err = s.Sign([]byte("record"))
			return err
		}},
	} {
		start := time.Now()
		err := tc.call()
		d := time.Since(start)
		if !errors.Is(err, keystore.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s: %v, want ErrUnavailable after the timeout", tc.name, err)
		}
		if d < tc.max || d > tc.max+5*time.Second {
			t.Errorf("%s: returned after %s, want its timeout %s", tc.name, d, tc.max)
		}
		t.Logf("%s: %v after %s", tc.name, err, d)
	}
}

// TestBadAnswers: answers that break the API are ErrBadAnswer, never a key or a
// signature amosd would use.
func TestBadAnswers(t *testing.T) {
	bus := testenv.StartBus(t)
	a, err := devattest.New(time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC), "bad answers")
	if err != nil {
		t.Fatal(err)
	}
	key := func() (*ecdsa.PrivateKey, []byte) {
		priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		pub, _ := priv.PublicKey.Bytes()
		return priv, pub
	}
	priv, pub := key()
	other, _ := key()
	otherChain, err := a.Attest(&other.PublicKey, devattest.Options{Challenge: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	answers := map[string]struct {
		pub   []byte
		chain [][]byte
	}{
		"short-key":   {pub[:64], nil},
		"not-a-point": {append([]byte{4}, make([]byte, 64)...), nil},
		"other-leaf":  {pub, otherChain},
		"long-chain":  {pub, append(append(append([][]byte{}, otherChain...), otherChain...), otherChain...)},
		"not-der":     {pub, [][]byte{[]byte("not a certificate")}},
		"empty-cert":  {pub, [][]byte{{}}},
	}
	fakeKeystore(t, bus, map[string]any{
		"GetKey": func(alias string) ([]byte, [][]byte, *dbus.Error) {
			a := answers[alias]
			return a.pub, a.chain, nil
		},
		"Sign": func(alias string, digest []byte) ([]byte, *dbus.Error) {
			if alias == "raw-signature" {
				return make([]byte, 64), nil
			}
			sig, _ := ecdsa.SignASN1(rand.Reader, priv, digest)
			return sig, nil
		},
	})
	ctx := testenv.Context(t, time.Minute)
	c := dial(t, bus.Address, keystore.Options{})
	for name := range answers {
		if _, err := c.GetKey(ctx, name); !errors.Is(err, keystore.ErrBadAnswer) {
			t.Errorf("GetKey %s: %v, want ErrBadAnswer", name, err)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
	if _, err := c.Sign(ctx, "raw-signature", [32]byte{}); !errors.Is(err, keystore.ErrBadAnswer) {
		t.Errorf("Sign answering r‖s instead of DER: %v, want ErrBadAnswer", err)
	}
	if _, err := c.Sign(ctx, "good", [32]byte{1}); err != nil {
		t.Errorf("Sign: %v", err)
	}
}

// TestConfigAliasAgrees: amosd's configuration accepts exactly the aliases of the API
// (config has its own copy of ValidAlias: it cannot import this package).
func TestConfigAliasAgrees(t *testing.T) {
	for _, alias := range []string{"amosd-device", "a", "A.b_c-9", "", ".x", "a/b", "../x", "é", "a b",
		strings.Repeat("x", keystore.MaxAliasLen), strings.Repeat("x", keystore.MaxAliasLen+1)} {
		js, _ := json.Marshal(alias)
		_, err := config.Parse("amosd.json", []byte(`{"server_url": "https://x", "ca_file": "/ca", "key": {"backend": "keystore", "alias": `+string(js)+`}}`))
		if (err == nil) != keystore.ValidAlias(alias) {
			t.Errorf("alias %q: ValidAlias %v, configuration error %v", alias, keystore.ValidAlias(alias), err)
		}
	}
}
