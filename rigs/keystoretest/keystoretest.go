package keystoretest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"amos.example/amosd/agent/keystore"
	"amos.example/amosd/internal/devattest"
	"amos.example/amosd/internal/devkeystore"
	"amos.example/amosd/rigs/testenv"
	"amos.example/amosd/sources"
)

// Keystore is amos-keystored's service (internal/devkeystore), serving
// com.amos.Keystore1 from this process on a test bus.
type Keystore struct {
	Service   *devkeystore.Service
	Authority *devattest.Authority
	StateDir  string
}

// Start serves a development keystore on bus until the test ends, to the uids
// allow (none given: this process's uid), with a new development authority. It
// returns once the keystore owns its name.
func Start(t testing.TB, bus *testenv.Bus, allow ...uint32) *Keystore {
	t.Helper()
	if len(allow) == 0 {
		allow = []uint32{uint32(os.Getuid())}
	}
	notBefore, notAfter := devkeystore.AuthorityValidity()
	a, err := devattest.New(notBefore, notAfter, "Amos test keystore")
	if err != nil {
		t.Fatal(err)
	}
	k := &Keystore{Authority: a, StateDir: filepath.Join(t.TempDir(), "keystore")}
	k.Service, err = devkeystore.New(devkeystore.Options{StateDir: k.StateDir, Authority: a, AllowUIDs: allow, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	conn, err := sources.Dial(ctx, bus.Address)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		err := k.Service.Serve(ctx, conn)
		if err != nil && ctx.Err() == nil {
			t.Errorf("development keystore: %v", err)
		}
		done <- err
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		conn.Close()
	})
	WaitName(t, bus.Address, keystore.Name, 30*time.Second)
	return k
}

// WaitName waits until name has an owner on the bus at address, failing the test after d.
func WaitName(t testing.TB, address, name string, d time.Duration) {
	t.Helper()
	ctx := testenv.Context(t, d)
	conn, err := sources.Dial(ctx, address)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	sigs := make(chan *dbus.Signal, 16)
	conn.Signal(sigs)
	if err := conn.AddMatchSignalContext(ctx, dbus.WithMatchSender(sources.BusName), dbus.WithMatchMember("NameOwnerChanged"), dbus.WithMatchArg(0, name)); err != nil {
		t.Fatal(err)
	}
	var owner string
	err = conn.BusObject().CallWithContext(ctx, sources.BusName+".GetNameOwner", 0, name).Store(&owner)
	var derr dbus.Error
	switch {
	case err == nil:
		return
	case !errors.As(err, &derr) || derr.Name != sources.ErrNoOwn:
		t.Fatal(err)
	}
	for {
		select {
		case s := <-sigs:
			if s.Name == sources.BusName+".NameOwnerChanged" && len(s.Body) == 3 && s.Body[2] != "" {
				return
			}
		case <-ctx.Done():
			t.Fatalf("nobody owned %s within %s", name, d)
		}
	}
}
