package devkeystore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/godbus/dbus/v5"

	"amos.example/amosd/agent/keystore"
	"amos.example/amosd/internal/devattest"
)

// What Info answers: loud, so that no one takes these keys for hardware ones.
const (
	Implementation = "amos-keystored DEVELOPMENT reference implementation: software keys, development attestation root, NOT FOR PRODUCTION"
	SecurityLevel  = "software"
)

// Options configure a Service.
type Options struct {
	// StateDir holds the keys, one directory per caller uid (created 0700).
	StateDir string
	// Authority issues the attestation chains.
	Authority *devattest.Authority
	// Attest is the template of each attestation; its Challenge is the caller's. The
	// zero value is an honest TEE attestation of a locked, verified handset.
	Attest devattest.Options
	// AllowUIDs are the uids that may call; every other uid is refused.
	AllowUIDs []uint32
	// Logf logs each call and refusal; nil logs nothing.
	Logf func(string, ...any)
}

// Service is the keystore: the key operations, per caller uid, and their D-Bus face.
type Service struct {
	o  Options
	mu sync.Mutex // one key operation of the state directory at a time
}

// New checks o and creates the state directory (0700); an existing one that group or
// others can enter is refused.
func New(o Options) (*Service, error) {
	switch {
	case o.StateDir == "":
		return nil, errors.New("devkeystore: no state directory")
	case o.Authority == nil:
		return nil, errors.New("devkeystore: no attestation authority")
	case len(o.AllowUIDs) == 0:
		return nil, errors.New("devkeystore: no uid is allowed to call")
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	if err := os.MkdirAll(o.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("devkeystore: state directory: %w", err)
	}
	fi, err := os.Stat(o.StateDir)
	if err != nil {
		return nil, fmt.Errorf("devkeystore: state directory: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("devkeystore: state directory %s: mode %04o lets others in, want 0700 (chmod 700 %s)", o.StateDir, fi.Mode().Perm(), o.StateDir)
	}
	return &Service{o: o}, nil
}

func (s *Service) attestOptions(challenge []byte) devattest.Options {
	o := s.o.Attest
	o.Challenge = challenge
	return o
}

// AuthorityValidity is the validity of a development authority that LoadAuthority
// creates, and of its chains: fixed, wide dates (2020-01-01 to 2099-12-31), so that a
// chain is valid whatever date a test or the demo plays.
func AuthorityValidity() (notBefore, notAfter time.Time) {
	return time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2099, 12, 31, 23, 59, 59, 0, time.UTC)
}

// LoadAuthority loads the development authority saved in dir, or creates one named
// name and saves it there when dir holds none; created says which.
func LoadAuthority(dir, name string) (a *devattest.Authority, created bool, err error) {
	if _, err := os.Stat(filepath.Join(dir, devattest.RootFile)); errors.Is(err, fs.ErrNotExist) {
		notBefore, notAfter := AuthorityValidity()
		a, err := devattest.New(notBefore, notAfter, name)
		if err != nil {
			return nil, false, err
		}
		if err := a.Save(dir); err != nil {
			return nil, false, err
		}
		return a, true, nil
	}
	a, err = devattest.Load(dir)
	return a, false, err
}

// Serve exports com.amos.Keystore1 on conn and owns its name until ctx is done (nil) or
// the connection is lost (an error: godbus never reconnects; the service manager
// restarts the process).
func (s *Service) Serve(ctx context.Context, conn *dbus.Conn) error {
	m := methods{s: s, conn: conn}
	if err := conn.ExportMethodTable(map[string]any{
		"GenerateAttestedKey": m.GenerateAttestedKey,
		"GetKey":              m.GetKey,
		"Sign":                m.Sign,
		"Info":                m.Info,
	}, keystore.Path, keystore.Iface); err != nil {
		return fmt.Errorf("export %s: %w", keystore.Path, err)
	}
	if err := conn.ExportMethodTable(map[string]any{
		"Introspect": func() (string, *dbus.Error) { return introspection, nil },
	}, keystore.Path, "org.freedesktop.DBus.Introspectable"); err != nil {
		return fmt.Errorf("export introspection: %w", err)
	}
	reply, err := conn.RequestName(keystore.Name, dbus.NameFlagDoNotQueue)
	var derr dbus.Error
	switch {
	case errors.As(err, &derr) && derr.Name == keystore.ErrAccessDeniedName:
		return fmt.Errorf("the bus policy does not let uid %d own %s (allow it in the bus policy; the test bus lets root own any name): %w", os.Getuid(), keystore.Name, err)
	case err != nil:
		return fmt.Errorf("request %s: %w", keystore.Name, err)
	case reply != dbus.RequestNameReplyPrimaryOwner && reply != dbus.RequestNameReplyAlreadyOwner:
		return fmt.Errorf("another process owns %s", keystore.Name)
	}
	s.o.Logf("serving %s as %s for uids %v", keystore.Name, conn.Names()[0], s.o.AllowUIDs)
	select {
	case <-ctx.Done():
		conn.ReleaseName(keystore.Name)
		return nil
	case <-conn.Context().Done():
		return fmt.Errorf("lost the bus connection")
	}
}

// methods are the D-Bus methods; godbus fills in the Sender.
type methods struct {
	s    *Service
	conn *dbus.Conn
}

// caller asks the bus for the caller's uid (never an argument) and checks it.
func (m methods) caller(sender dbus.Sender, method string) (uint32, *dbus.Error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var uid uint32
	if err := m.conn.BusObject().CallWithContext(ctx, "org.freedesktop.DBus.GetConnectionUnixUser", 0, string(sender)).Store(&uid); err != nil {
		return 0, dbus.NewError(keystore.ErrAccessDeniedName, []any{fmt.Sprintf("cannot tell the uid of %s: %v", sender, err)})
	}
	if !slices.Contains(m.s.o.AllowUIDs, uid) {
		m.s.o.Logf("denied %s to uid %d", method, uid)
		return 0, dbus.NewError(keystore.ErrAccessDeniedName, []any{fmt.Sprintf("uid %d may not call %s.%s", uid, keystore.Iface, method)})
	}
	return uid, nil
}

// answer turns an error of a key operation into the D-Bus error of the API.
func answer(err error) *dbus.Error {
	name := keystore.ErrFailedName
	switch {
	case errors.Is(err, ErrNoKey):
		name = keystore.ErrNoSuchKeyName
	case errors.Is(err, ErrExists):
		name = keystore.ErrKeyExistsName
	case errors.Is(err, ErrInvalid):
		name = keystore.ErrInvalidArgsName
	}
	return dbus.NewError(name, []any{err.Error()})
}

func (m methods) GenerateAttestedKey(sender dbus.Sender, alias string, challenge []byte) ([]byte, [][]byte, *dbus.Error) {
	uid, derr := m.caller(sender, "GenerateAttestedKey")
	if derr != nil {
		return nil, nil, derr
	}
	k, err := m.s.Generate(uid, alias, challenge)
	if err != nil {
		m.s.o.Logf("uid %d: GenerateAttestedKey %q: %v", uid, alias, err)
		return nil, nil, answer(err)
	}
	m.s.o.Logf("uid %d: generated key %q, %x, chain of %d certificates", uid, alias, k.PublicKey, len(k.Chain))
	return k.PublicKey, k.Chain, nil
}

func (m methods) GetKey(sender dbus.Sender, alias string) ([]byte, [][]byte, *dbus.Error) {
	uid, derr := m.caller(sender, "GetKey")
	if derr != nil {
		return nil, nil, derr
	}
	k, err := m.s.Get(uid, alias)
	if err != nil {
		return nil, nil, answer(err)
	}
	return k.PublicKey, k.Chain, nil
}

func (m methods) Sign(sender dbus.Sender, alias string, digest []byte) ([]byte, *dbus.Error) {
	uid, derr := m.caller(sender, "Sign")
	if derr != nil {
		return nil, derr
	}
	sig, err := m.s.Sign(uid, alias, digest)
	if err != nil {
		m.s.o.Logf("uid %d: Sign with %q: %v", uid, alias, err)
		return nil, answer(err)
	}
	return sig, nil
}

func (m methods) Info(sender dbus.Sender) (string, string, *dbus.Error) {
	if _, derr := m.caller(sender, "Info"); derr != nil {
		return "", "", derr
	}
	return Implementation + " (root " + m.s.o.Authority.Name() + ")", SecurityLevel, nil
}

// introspection is the document Introspect returns: the methods of docs/dbus-api.md.
const introspection = `<!DOCTYPE node PUBLIC "-//freedesktop//DTD D-BUS Object Introspection 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd">
<node>
  <interface name="com.amos.Keystore1">
    <method name="GenerateAttestedKey">
      <arg name="alias" type="s" direction="in"/>
      <arg name="challenge" type="ay" direction="in"/>
      <arg name="public_key" type="ay" direction="out"/>
      <arg name="chain" type="aay" direction="out"/>
    </method>
    <method name="GetKey">
      <arg name="alias" type="s" direction="in"/>
      <arg name="public_key" type="ay" direction="out"/>
      <arg name="chain" type="aay" direction="out"/>
    </method>
    <method name="Sign">
      <arg name="alias" type="s" direction="in"/>
      <arg name="digest" type="ay" direction="in"/>
      <arg name="signature" type="ay" direction="out"/>
    </method>
    <method name="Info">
      <arg name="implementation" type="s" direction="out"/>
      <arg name="security_level" type="s" direction="out"/>
    </method>
  </interface>
  <interface name="org.freedesktop.DBus.Introspectable">
    <method name="Introspect">
      <arg name="xml_data" type="s" direction="out"/>
    </method>
  </interface>
</node>
`
