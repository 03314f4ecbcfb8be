package linuxbuild

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"amos.example/amosd/rigs/testenv"
)

// TestPolicyLetsSignalsReachAmosd: on a Debian-like system bus with this folder's
// policy, the owner of com.amos.Agent1 receives the platform's broadcast signals (the
// power manager's, logind's). dbus-daemon checks a broadcast signal's send rules
// against each recipient's names, so a bare <deny send_destination="com.amos.Agent1"/>
// would silence every signal amosd listens to; the deny is for method calls only.
func TestPolicyLetsSignalsReachAmosd(t *testing.T) {
	needRoot(t)
	conf := systemBusConfig(filepath.Join(t.TempDir(), "bus"), "", here(t, policyFile))
	confPath := filepath.Join(t.TempDir(), "system.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	bus := testenv.StartBusConfig(t, confPath)
	dial := func() *dbus.Conn {
		c, err := dbus.Connect(bus.Address, dbus.WithSignalHandler(dbus.NewSequentialSignalHandler()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	agent, platform := dial(), dial()
	if reply, err := agent.RequestName("com.amos.Agent1", dbus.NameFlagDoNotQueue); err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("own com.amos.Agent1: %v %v", reply, err)
	}
	if err := agent.AddMatchSignal(dbus.WithMatchInterface("com.amos.PowerManager1")); err != nil {
		t.Fatal(err)
	}
	got := make(chan *dbus.Signal, 1)
	agent.Signal(got)
	if err := platform.Emit("/com/amos/PowerManager1", "com.amos.PowerManager1.ScreenChanged", true); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-got:
		if s.Name != "com.amos.PowerManager1.ScreenChanged" {
			t.Errorf("got %s", s.Name)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the owner of com.amos.Agent1 did not receive the power manager's broadcast signal")
	}
}
