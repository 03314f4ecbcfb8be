package agent

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"amos.example/amosd/agent/config"
	"amos.example/amosd/agent/dbusapi"
	"amos.example/amosd/agent/identity"
	"amos.example/amosd/proof"
	"amos.example/amosd/rigs/inputdev"
	"amos.example/amosd/rigs/testenv"
	"amos.example/amosd/sources"
	"amos.example/amosd/store"
)

var (
	power      = []string{config.SourceAmosPower}
	morning    = time.Date(2026, 11, 24, 8, 0, 0, 0, cst)
	unconfirmd = proof.FlagClockUnconfirmed
)

func TestNormalDay(t *testing.T) {
	r := newRig(t, morning, power, nil)
	r.start()
	if g := r.waitMinted(); g.Kind() != proof.KindGenesis {
		t.Fatalf("first record minted is not the genesis: %+v", g)
	}
	r.at("09:00:00")
	r.power("ScreenChanged", true)
	r.power("LockChanged", false)
	r.power("UserActivity")
	r.advance(10 * time.Second)
	r.power("UserActivity") // the window now ends at 09:00:40
	r.advance(5 * time.Minute)
	r.power("ScreenChanged", false)
	r.power("LockChanged", true)
	st, err := r.a.Status(context.Background())
	if err != nil || st.TodayDate != 20261124 || st.TodayInteractiveSeconds != 40 || st.Epoch != 1 || st.LastSeq != 1 {
		t.Fatalf("status %+v %v", st, err)
	}
	r.at("00:00:00") // midnight: the day is minted
	if rec := r.waitMinted(); rec.Kind() != proof.KindActivity {
		t.Fatal("no activity record at midnight")
	}
	// The status over the daemon's own D-Bus API, as `amosd status` reads it.
	c, err := dbusapi.Dial(context.Background(), r.bus.Address)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got, err := c.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	wantStatus := map[string]any{
		"version": "test", "device_id": r.a.DeviceID().String(), "epoch": uint32(1), "last_seq": uint64(2),
		"queued": uint32(2), "dead_letter": uint32(0), "consent": true, "today_date": uint32(20261125),
		"today_interactive_seconds": uint32(0), "clock_trusted": false, "spoofed_signals": uint64(0),
		"sources": []string{config.SourceAmosPower}, "cert_problem": "",
	}
	for k, v := range wantStatus {
		if !reflect.DeepEqual(got[k], v) {
			t.Errorf("status %s = %#v, want %#v", k, got[k], v)
		}
	}
	if b, _ := got["store_bytes"].(uint64); b == 0 || len(got) != 17 { // last_recovery only after one
		t.Errorf("status has %d keys, store_bytes %v", len(got), got["store_bytes"])
	}
	// No server listens: the sync loop tried, failed, and backs off.
	last, _ := got["last_sync_unix"].(int64)
	next, _ := got["next_retry_unix"].(int64)
	if res, _ := got["last_sync_result"].(string); last == 0 || next <= last || !strings.Contains(res, "connection refused") {
		t.Errorf("sync status: last %d, next %d, result %q", last, next, got["last_sync_result"])
	}
	r.at("12:00:00") // a day without use gets no record
	r.at("00:00:00")
	r.stop()
	r.check(r.records(), 1, proof.ReasonFirstStart,
		want{date: 20261124, secs: 40, unlocks: 1, screens: 1, hours: []int{9}, flags: unconfirmd})
}

func TestOverlappingSources(t *testing.T) {
	r := newRig(t, morning, []string{config.SourceAmosPower, config.SourceLogind}, nil)
	r.start()
	r.at("10:00:00")
	r.power("ScreenChanged", true)
	r.power("LockChanged", false)
	r.logind.set("LockedHint", false) // the same unlock, told twice: counted once
	r.waitEvent(config.SourceLogind, sources.EventUnlocked)
	r.logind.set("IdleHint", false) // active: interactive until idle
	r.waitEvent(config.SourceLogind, sources.EventActive)
	r.advance(20 * time.Second)
	r.power("UserActivity")
	r.advance(100 * time.Second)
	r.logind.set("IdleHint", true) // 10:02:00: idle; the last input is long past
	r.waitEvent(config.SourceLogind, sources.EventIdle)
	r.advance(time.Minute)
	r.power("ScreenChanged", false)
	r.at("00:00:00")
	r.waitMinted()
	r.stop()
	r.check(r.records(), 1, proof.ReasonFirstStart,
		want{date: 20261124, secs: 120, unlocks: 1, screens: 1, hours: []int{10}, flags: unconfirmd})
}

func TestDaySpanningMidnight(t *testing.T) {
	r := newRig(t, morning, power, nil)
	r.start()
	r.at("23:59:00")
	r.power("ScreenChanged", true)
	r.power("LockChanged", false)
	r.advance(50 * time.Second)
	r.power("UserActivity") // 23:59:50: interactive until 00:00:20
	r.at("00:00:00")
	r.waitMinted()
	r.advance(time.Minute)
	r.power("ScreenChanged", false)
	r.at("00:00:00")
	r.waitMinted()
	r.stop()
	r.check(r.records(), 1, proof.ReasonFirstStart,
		want{date: 20261124, secs: 10, unlocks: 1, screens: 1, hours: []int{23}, flags: unconfirmd},
		want{date: 20261125, secs: 20, hours: []int{0}, flags: unconfirmd})
}

func TestSuspendAcrossMidnight(t *testing.T) {
	r := newRig(t, morning, []string{config.SourceAmosPower, config.SourceLogind}, nil)
	r.start()
	r.at("22:00:00")
	r.use(time.Minute)
	r.at("23:00:00")
	r.logind.sleep(true)
	r.waitEvent(config.SourceLogind, sources.EventSuspend)
	r.clock.Suspend(2 * time.Hour) // wakes at 01:00: the alarm fires late, on resume
	r.waitTrace("alarm")
	r.waitMinted()
	r.logind.sleep(false)
	r.waitEvent(config.SourceLogind, sources.EventResume)
	r.stop()
	r.check(r.records(), 1, proof.ReasonFirstStart,
		want{date: 20261124, secs: 30, unlocks: 1, screens: 1, hours: []int{22}, flags: unconfirmd})
}

func TestWallClockSetBackADay(t *testing.T) {
	r := newRig(t, morning, power, nil)
	r.start()
	r.at("09:00:00")
	r.use(time.Minute)
	r.at("10:00:00")
	r.clock.SetWall(r.clock.Now().Add(-24 * time.Hour)) // 2026-11-23 10:00
	r.waitTrace("alarm")
	r.at("11:00:00")
	r.use(time.Minute) // still counted into 11-24: never an earlier date
	r.at("00:00:00")   // 11-24 begins on the wall clock: nothing to mint
	r.at("00:00:00")   // 11-25 begins: 11-24 is minted, once
	r.waitMinted()
	r.stop()
	r.check(r.records(), 1, proof.ReasonFirstStart,
		want{date: 20261124, secs: 60, unlocks: 2, screens: 2, hours: []int{9, 11}, flags: unconfirmd | proof.FlagClockJumped})
}

func TestWallClockForwardAWeek(t *testing.T) {
	r := newRig(t, morning, power, nil)
	r.start()
	r.at("09:00:00")
	r.use(time.Minute)
	r.clock.SetWall(r.clock.Now().Add(7 * 24 * time.Hour)) // 2026-12-01 09:01
	r.waitTrace("alarm")
	r.waitMinted() // 11-24 closes at once
	r.at("10:00:00")
	r.use(time.Minute)
	r.at("00:00:00")
	r.waitMinted()
	r.stop()
	r.check(r.records(), 1, proof.ReasonFirstStart,
		want{date: 20261124, secs: 30, unlocks: 1, screens: 1, hours: []int{9}, flags: unconfirmd | proof.FlagClockJumped},
		want{date: 20261201, secs: 30, unlocks: 1, screens: 1, hours: []int{10}, flags: unconfirmd})
}

func TestRestartMidDay(t *testing.T) {
	r := newRig(t, morning, power, nil)
	r.start()
	r.at("09:00:00")
	r.use(time.Minute)
	r.stop() // as on SIGTERM: the tally is saved
	r.at("11:00:00")
	r.start()
	r.use(time.Minute)
	r.at("00:00:00")
	r.waitMinted()
	r.stop()
	r.check(r.records(), 1, proof.ReasonFirstStart,
		want{date: 20261124, secs: 60, unlocks: 2, screens: 2, hours: []int{9, 11}, flags: unconfirmd})
}

func TestRestartAfterMidnightMintsTheMissedDay(t *testing.T) {
	r := newRig(t, morning, power, nil)
	r.start()
	r.at("20:00:00")
	r.use(time.Minute)
	r.stop()
	r.clock.Advance(24 * time.Hour) // down over midnight
	r.start()
	r.waitMinted()
	r.stop()
	r.check(r.records(), 1, proof.ReasonFirstStart,
		want{date: 20261124, secs: 30, unlocks: 1, screens: 1, hours: []int{20}, flags: unconfirmd})
}

func TestConsentOffOnOff(t *testing.T) {
	r := newRig(t, morning, power, func(c *config.Config) { c.ConsentDefault = false })
	r.start()
	ctx := context.Background()
	r.at("09:00:00")
	r.use(time.Minute) // no consent: not counted
	if st, _ := r.a.Status(ctx); st.Consent || st.TodayInteractiveSeconds != 0 || st.LastSeq != 0 {
		t.Fatalf("status without consent: %+v", st)
	}
	if err := r.a.SetConsent(ctx, true); err != nil {
		t.Fatal(err)
	}
	if g := r.waitMinted(); g.Kind() != proof.KindGenesis || g.Epoch != 1 {
		t.Fatalf("genesis after consent: %+v", g)
	}
	r.at("10:00:00")
	r.use(time.Minute)
	if err := r.a.SetConsent(ctx, false); err != nil {
		t.Fatal(err)
	}
	if st, _ := r.a.Status(ctx); st.Queued != 0 || st.Consent {
		t.Fatalf("after revoking: %+v", st)
	}
	r.at("11:00:00")
	r.use(time.Minute) // not counted
	if err := r.a.SetConsent(ctx, true); err != nil {
		t.Fatal(err)
	}
	if g := r.waitMinted(); g.Epoch != 2 {
		t.Fatalf("genesis after the second consent is in epoch %d, want 2", g.Epoch)
	}
	r.at("12:00:00")
	r.use(time.Minute)
	r.at("00:00:00")
	r.waitMinted()
	r.stop()
	r.check(r.records(), 2, proof.ReasonStoreRecreated,
		want{date: 20261124, secs: 30, unlocks: 1, screens: 1, hours: []int{12}, flags: unconfirmd})
	if e, _, _ := identity.ReadEpoch(r.cfg.KeyDir); e != 2 {
		t.Fatalf("epoch file says %d", e)
	}
}

func TestSpoofedSignalsAreIgnored(t *testing.T) {
	r := newRig(t, morning, power, nil)
	r.start()
	spoof := r.connect("")
	if err := spoof.Emit("/com/amos/PowerManager", sources.PowerManagerIface+".ScreenChanged", true); err != nil {
		t.Fatal(err)
	}
	// A round trip to the bus: it has routed the signal before it answers.
	var id string
	if err := spoof.BusObject().Call("org.freedesktop.DBus.GetId", 0).Store(&id); err != nil {
		t.Fatal(err)
	}
	r.power("UserActivity") // routed after the spoofed signal
	st, err := r.a.Status(context.Background())
	if err != nil || st.SpoofedSignals != 1 {
		t.Fatalf("spoofed_signals %d (%v), want 1", st.SpoofedSignals, err)
	}
	for len(r.events) > 0 {
		r.backlog = append(r.backlog, <-r.events)
	}
	for _, ev := range r.backlog {
		if ev.Kind == sources.EventScreenOn {
			t.Fatal("a spoofed ScreenChanged was accounted")
		}
	}
}

func TestBusRestart(t *testing.T) {
	r := newRig(t, morning, power, nil)
	r.start()
	r.bus.Stop() // dbus-daemon dies
	r.waitEvent(config.SourceAmosPower, sources.EventUnavailable)
	r.bus.Start()
	r.pm = r.connect(sources.PowerManagerName) // the power manager comes back too
	r.waitEvent(config.SourceAmosPower, sources.EventAvailable)
	r.at("09:00:00")
	r.use(time.Minute)
	// amosd's own name and object are back too.
	c, err := dbusapi.Dial(context.Background(), r.bus.Address)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if st, err := c.Status(context.Background()); err != nil || st["today_interactive_seconds"] != uint32(30) {
		t.Fatalf("status over D-Bus after the bus restarted: %v %v", st, err)
	}
}

func TestKeyFileReadableByOthers(t *testing.T) {
	r := newRig(t, morning, power, nil)
	os.MkdirAll(r.cfg.KeyDir, 0o700)
	key := filepath.Join(r.cfg.KeyDir, identity.KeyFile)
	if err := os.WriteFile(key, make([]byte, 32), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chmod(key, 0o644)
	_, err := New(Options{Config: r.cfg, Clock: r.clock})
	if !errors.Is(err, identity.ErrIdentity) || !strings.Contains(err.Error(), "mode 0644") || !strings.Contains(err.Error(), key) {
		t.Fatalf("got %v", err)
	}
	os.WriteFile(key, make([]byte, 31), 0o600)
	os.Chmod(key, 0o600)
	if _, err := New(Options{Config: r.cfg, Clock: r.clock}); !errors.Is(err, identity.ErrIdentity) || !strings.Contains(err.Error(), "32-byte") {
		t.Fatalf("31-byte key: %v", err)
	}
}

func TestCertForAnotherKey(t *testing.T) {
	r := newRig(t, morning, power, nil)
	maker, _ := proof.NewKeySigner(make([]byte, 32))
	other, _ := proof.NewKeySigner(append(make([]byte, 31), 1))
	c := &proof.Certificate{DevicePublicKey: other.PublicKey(), MakerID: "konka", Model: "T1", IssuedAt: 1790000000}
	b, err := c.Sign(maker)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := identity.Load(r.cfg.KeyDir); err != nil { // the device's key, then a wrong certificate
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(r.cfg.KeyDir, identity.CertFile), b, 0o644)
	r.start()
	g := r.waitMinted()
	if gb, _ := g.Genesis(); gb.Cert != nil {
		t.Fatal("a certificate for another key went into the genesis")
	}
	st, _ := r.a.Status(context.Background())
	if !strings.Contains(st.CertProblem, "certifies key "+other.PublicKey().String()) {
		t.Fatalf("cert problem %q", st.CertProblem)
	}
	// With the right certificate, the genesis carries it.
	r.stop()
	r2 := newRig(t, morning, power, nil)
	os.MkdirAll(r2.cfg.KeyDir, 0o700)
	id, err := identity.Load(r2.cfg.KeyDir)
	if err != nil {
		t.Fatal(err)
	}
	c.DevicePublicKey = id.PublicKey
	b, _ = c.Sign(maker)
	os.WriteFile(filepath.Join(r2.cfg.KeyDir, identity.CertFile), b, 0o644)
	r2.start()
	if gb, _ := r2.waitMinted().Genesis(); gb.Cert == nil || gb.Cert.MakerID != "konka" {
		t.Fatalf("genesis without the maker certificate: %+v", gb)
	}
}

func TestNoTimerWhileIdle(t *testing.T) {
	col := testenv.StartCollector(t)
	r := newRig(t, morning, power, withCollector(col))
	r.start()
	r.waitTrace("sync") // the genesis is delivered: the queue is empty
	r.at("09:00:00")
	r.use(time.Minute)
	r.advance(2 * time.Minute) // the last save is done
	if n := r.clock.armedTimers(); n != 0 {
		t.Fatalf("%d timers armed with the screen off: the daemon would wake up", n)
	}
}

func TestPowerLossLosesAtMostAMinute(t *testing.T) {
	r := newRig(t, morning, power, nil)
	r.start()
	r.at("09:00:00")
	r.power("ScreenChanged", true)
	r.power("LockChanged", false)
	for i := range 15 { // five minutes of touching, every 20 s
		r.power("UserActivity")
		r.advance(20 * time.Second)
		if i%3 == 2 {
			r.waitTrace("save")
		}
	}
	st, _ := r.a.Status(context.Background())
	saved, ok, err := r.a.Store().Tally()
	if !ok || err != nil {
		t.Fatalf("no tally on disk: %v", err)
	}
	if lost := st.TodayInteractiveSeconds - saved.InteractiveSeconds; lost > 60 {
		t.Fatalf("a power loss now would lose %d s (%d counted, %d on disk)", lost, st.TodayInteractiveSeconds, saved.InteractiveSeconds)
	}
	t.Logf("%d s counted, %d s on disk", st.TodayInteractiveSeconds, saved.InteractiveSeconds)
}

// TestCorruptStoreStartsANewEpoch: a store that flash gave up on is recreated; the owner's
// consent survives it (here consent_default, never changed), the chain continues in
// epoch 2 at once, and Status says when and why, with both epochs and where consent
// came from.
func TestCorruptStoreStartsANewEpoch(t *testing.T) {
	r := newRig(t, morning, power, nil)
	r.start()
	r.at("09:00:00")
	r.use(time.Minute)
	r.stop()
	if err := os.WriteFile(filepath.Join(r.cfg.DataDir, "amosd.db"), []byte("flash gave up"), 0o600); err != nil {
		t.Fatal(err)
	}
	r.at("10:00:00")
	r.start()
	if g := r.waitMinted(); g.Epoch != 2 {
		t.Fatalf("genesis after recovery in epoch %d", g.Epoch)
	}
	st, _ := r.a.Status(context.Background())
	if st.Recovery == nil || !strings.Contains(st.Recovery.Cause, "corrupt") || !st.Consent {
		t.Fatalf("status after recovery: consent %v, recovery %+v", st.Consent, st.Recovery)
	}
	if o := st.RecoveryOutcome; o == nil || *o != (store.Outcome{OldEpoch: 1, NewEpoch: 2, Consent: "consent_default"}) {
		t.Fatalf("recovery outcome %+v, want epoch 1 -> 2, consent from consent_default", o)
	}
	rec, ok := st.Variants()["last_recovery"].Value().(map[string]dbus.Variant)
	if !ok || rec["new_epoch"].Value() != uint32(2) || rec["old_epoch"].Value() != uint32(1) || rec["cause"].Value() != st.Recovery.Cause {
		t.Fatalf("last_recovery over D-Bus: %v", rec)
	}
	r.use(time.Minute)
	r.at("00:00:00")
	r.waitMinted()
	r.stop()
	// The morning's tally was lost with the store: the day says so.
	r.check(r.records(), 2, proof.ReasonStoreRecreated,
		want{date: 20261124, secs: 30, unlocks: 1, screens: 1, hours: []int{10}, flags: unconfirmd | proof.FlagTallyLost})
}

// TestConsentSurvivesStoreLoss: the owner's decision is kept beside the key, so that a
// store lost to corruption keeps it whatever consent_default says; a wiped data
// partition (a factory reset: perhaps a new owner) goes back to consent_default.
func TestConsentSurvivesStoreLoss(t *testing.T) {
	for _, tc := range []struct {
		name         string
		def, decided bool
		wipe         bool // the whole data partition, not a corrupt store
		want         bool
		source       string
	}{
		{"revoked, default true", true, false, false, false, "key_dir"},
		{"granted, default false", false, true, false, true, "key_dir"},
		{"revoked, then wiped, default true", true, false, true, true, ""},
		{"granted, then wiped, default false", false, true, true, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, morning, power, func(c *config.Config) { c.ConsentDefault = tc.def })
			r.start()
			if err := r.a.SetConsent(context.Background(), tc.decided); err != nil {
				t.Fatal(err)
			}
			r.stop()
			if tc.wipe {
				if err := os.RemoveAll(r.cfg.DataDir); err != nil {
					t.Fatal(err)
				}
			} else if err := os.WriteFile(filepath.Join(r.cfg.DataDir, "amosd.db"), []byte("flash gave up"), 0o600); err != nil {
				t.Fatal(err)
			}
			r.start()
			st, err := r.a.Status(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if st.Consent != tc.want {
				t.Fatalf("consent after the loss: %v, want %v", st.Consent, tc.want)
			}
			if tc.source != "" && (st.RecoveryOutcome == nil || st.RecoveryOutcome.Consent != tc.source) {
				t.Fatalf("recovery outcome %+v, want consent from %s", st.RecoveryOutcome, tc.source)
			}
			granted, ok, err := identity.ReadConsent(r.cfg.KeyDir)
			switch {
			case tc.wipe && ok:
				t.Fatalf("key_dir still holds the old owner's decision (%v) after a wipe", granted)
			case !tc.wipe && (!ok || granted != tc.want || err != nil):
				t.Fatalf("key_dir/consent: %v %v %v, want %v", granted, ok, err, tc.want)
			}
			r.stop()
			r.start() // and once more: the decision is now in the store
			if st, _ := r.a.Status(context.Background()); st.Consent != tc.want {
				t.Fatalf("consent after a restart: %v, want %v", st.Consent, tc.want)
			}
		})
	}
}

// TestEvdevAndPowerOverlap: a touch read from an input device and the power manager's
// UserActivity overlap; their windows are united, never added.
func TestEvdevAndPowerOverlap(t *testing.T) {
	devDir := t.TempDir()
	dev := inputdev.New(t, filepath.Join(devDir, "event0"))
	r := newRig(t, morning, []string{config.SourceAmosPower, config.SourceEvdev}, func(c *config.Config) { c.EvdevGlob = filepath.Join(devDir, "event*") })
	r.start()
	w := dev.Writer(t)
	r.waitEvent(config.SourceEvdev, sources.EventAvailable)
	r.at("09:00:00")
	r.power("ScreenChanged", true)
	r.power("LockChanged", false)
	if _, err := w.Write(inputdev.Touch()); err != nil { // a real touch
		t.Fatal(err)
	}
	r.waitEvent(config.SourceEvdev, sources.EventInput)
	r.advance(10 * time.Second)
	r.power("UserActivity") // 09:00:10: both windows cover 09:00:10..09:00:30
	r.advance(time.Minute)
	r.power("ScreenChanged", false)
	r.at("00:00:00")
	r.waitMinted()
	r.stop()
	r.check(r.records(), 1, proof.ReasonFirstStart,
		want{date: 20261124, secs: 40, unlocks: 1, screens: 1, hours: []int{9}, flags: unconfirmd})
}
