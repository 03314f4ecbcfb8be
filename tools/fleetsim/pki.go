package fleetsim

import (
	"time"

	"amos.example/amosd/internal/devpki"
)

// PKI is a development CA and one server certificate it signed for 127.0.0.1, ::1 and
// localhost, as files.
type PKI = devpki.PKI

// NewPKI makes a CA and a server certificate valid from an hour ago for validity, and
// writes ca.pem, server.pem and server.key (0600) into dir.
func NewPKI(dir string, validity time.Duration) (*PKI, error) {
	now := time.Now()
	return devpki.New(dir, devpki.Options{NotBefore: now.Add(-time.Hour), NotAfter: now.Add(validity)})
}
