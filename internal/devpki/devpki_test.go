package devpki

import (
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestHandshake: a TLS server with the certificate (from its files) and a client that
// trusts only the CA (from its file) complete a handshake on loopback, for the names
// and addresses asked for; another PKI's CA is refused; the key file is private.
func TestHandshake(t *testing.T) {
	now := time.Now()
	p, err := New(t.TempDir(), Options{NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), DNSNames: []string{"records.test"}})
	if err != nil {
		t.Fatal(err)
	}
	other, err := New(t.TempDir(), Options{NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(p.KeyFile); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("%s: %v %v", p.KeyFile, st.Mode(), err)
	}
	cert, err := tls.LoadX509KeyPair(p.CertFile, p.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	pool, err := LoadPool(p.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, server string
		roots        *PKI
		ok           bool
	}{
		{"ip", "", p, true}, {"dns", "records.test", p, true}, {"unnamed", "elsewhere.test", p, false}, {"other CA", "", other, false},
	} {
		cfg := tc.roots.ClientConfig()
		if tc.roots == p {
			cfg.RootCAs = pool
		}
		cfg.ServerName = tc.server
		d := &net.Dialer{Timeout: 10 * time.Second}
		c, err := tls.DialWithDialer(d, "tcp", ln.Addr().String(), cfg)
		if c != nil {
			c.Close()
		}
		if (err == nil) != tc.ok {
			t.Errorf("%s: handshake %v, want ok %v", tc.name, err, tc.ok)
		}
	}
	if _, err := New(filepath.Join(t.TempDir(), "x"), Options{}); err == nil {
		t.Error("an empty validity was accepted")
	}
	if _, err := LoadPool(p.KeyFile); err == nil {
		t.Error("a key file was taken for a CA bundle")
	}
}
