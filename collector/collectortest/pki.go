// Package collectortest makes what tests of the collector need: signed records of simulated
// handsets and makers, and a throwaway CA with a server certificate for real TLS.
package collectortest

import (
	"testing"
	"time"

	"amos.example/amosd/internal/devpki"
)

// PKI is a CA and one server certificate it signed, as PEM and as files.
type PKI = devpki.PKI

// New makes a CA and a server certificate for 127.0.0.1, ::1 and localhost, and writes
// ca.pem, server.pem and server.key (0600) to a temporary directory of t.
func New(t testing.TB) *PKI {
	t.Helper()
	return NewValid(t, 24*time.Hour)
}

// NewValid is New with certificates valid from an hour ago for the given time: a test
// that moves a clock forward by months needs them to outlive it.
func NewValid(t testing.TB, validity time.Duration) *PKI {
	t.Helper()
	now := time.Now()
	p, err := devpki.New(t.TempDir(), devpki.Options{NotBefore: now.Add(-time.Hour), NotAfter: now.Add(validity),
		CAName: "amos-collector test CA", ServerName: "amos-collector test server"})
	if err != nil {
		t.Fatal(err)
	}
	return p
}
