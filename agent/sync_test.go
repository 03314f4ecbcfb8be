package agent

import (
	"context"
	"net/http"
	"testing"
	"time"

	"amos.example/amosd/agent/config"
	"amos.example/amosd/proof"
	"amos.example/amosd/rigs/testenv"
)

// withCollector points the agent at c; the midnight record goes at once (sync.spread 0),
// as most tests of the sync loop want.
func withCollector(c *testenv.Collector) func(*config.Config) {
	return func(cfg *config.Config) {
		cfg.ServerURL, cfg.CAFile, cfg.AllowInsecureHTTP = c.URL, c.CAFile, false
		cfg.Sync.Spread = 0
	}
}

// TestSyncDeliversAndConfirmsTheClock: the genesis goes at once, the day's record at
// midnight; the server's time then drives the dates and clears FlagClockUnconfirmed.
func TestSyncDeliversAndConfirmsTheClock(t *testing.T) {
	col := testenv.StartCollector(t)
	r := newRig(t, morning, power, func(cfg *config.Config) {
		withCollector(col)(cfg)
		cfg.Sync.Spread = config.Duration(config.DefaultSyncSpread)
	})
	col.SetNow(func() int64 { return r.clock.Now().Unix() })
	r.start()
	r.waitTrace("sync")
	if _, n := col.Counts(); n != 1 {
		t.Fatalf("the server holds %d records after the first sync, want the genesis", n)
	}
	r.at("09:00:00")
	r.use(time.Minute)
	st, _ := r.a.Status(context.Background())
	if !st.ClockTrusted || st.Queued != 0 || st.LastSyncResult == "" {
		t.Fatalf("status after a sync: %+v", st)
	}
	r.at("00:00:00")
	r.waitMinted()
	// Midnight's record waits a random moment of sync.spread: the phones of a zone
	// must not all call at midnight.
	r.waitTraceAny("sync-spread")
	if requests, _ := col.Counts(); requests != 1 {
		t.Fatalf("%d requests right after the midnight mint, want none yet", requests)
	}
	if st, _ := r.a.Status(context.Background()); st.Queued != 1 {
		t.Fatalf("%d queued after the midnight mint, want 1", st.Queued)
	}
	r.clock.Advance(config.DefaultSyncSpread)
	r.waitTrace("sync")
	requests, n := col.Counts()
	if n != 2 || requests != 2 {
		t.Fatalf("server: %d records in %d requests, want 2 in 2", n, requests)
	}
	r.stop()
	if recs := r.records(); len(recs) != 0 {
		t.Fatalf("%d records still queued", len(recs))
	}
}

// TestSyncBacksOffDuringAnOutage: six hours of 503s, then Retry-After, then recovery:
// the requests follow the schedule of docs/protocol.md and nothing is lost.
func TestSyncBacksOffDuringAnOutage(t *testing.T) {
	col := testenv.StartCollector(t)
	col.SetFail(func(int) (int, string) { return http.StatusServiceUnavailable, "" })
	r := newRig(t, morning, nil, withCollector(col))
	r.start()
	r.waitTrace("sync") // the genesis: refused, backing off
	start := r.clock.Boottime()
	var waits []time.Duration
	for r.clock.Boottime()-start < 6*time.Hour {
		d, ok := r.clock.nextTimer()
		if !ok {
			t.Fatal("no retry scheduled during the outage")
		}
		waits = append(waits, d)
		r.clock.Advance(d)
		r.waitTrace("sync")
	}
	requests, _ := col.Counts()
	t.Logf("%d requests in 6 h of outage; waits %v", requests, waits)
	// 30 s doubling to the 6 h cap, each wait within ±50 %: at most 12 in 6 h.
	if requests > 12 || requests < 6 {
		t.Fatalf("%d requests in 6 h", requests)
	}
	for i, w := range waits {
		want := min(30*time.Second<<i, 6*time.Hour)
		if w < want/2 || w > want*3/2 {
			t.Errorf("wait %d is %v, want %v ± 50 %%", i, w, want)
		}
	}
	// The server asks for an hour: it gets an hour, plus up to half an hour at random
	// so that phones told the same do not all come back at once.
	col.SetFail(func(int) (int, string) { return http.StatusTooManyRequests, "3600" })
	d, _ := r.clock.nextTimer()
	r.clock.Advance(d)
	r.waitTrace("sync")
	d, _ = r.clock.nextTimer()
	if d < time.Hour || d >= 90*time.Minute {
		t.Fatalf("after Retry-After: 3600 the next attempt is in %v, want 1h to 1h30m", d)
	}
	col.SetFail(nil)
	r.clock.Advance(d)
	r.waitTrace("sync")
	if _, n := col.Counts(); n != 1 {
		t.Fatalf("the genesis did not arrive after the outage")
	}
	if _, ok := r.clock.nextTimer(); ok {
		t.Fatal("a timer is still armed with an empty queue")
	}
}

// TestSyncBackoffSurvivesRestart: a daemon restarted during a backoff waits out the
// rest of it instead of trying at once, so that a crash loop cannot hammer the server.
func TestSyncBackoffSurvivesRestart(t *testing.T) {
	col := testenv.StartCollector(t)
	col.SetFail(func(int) (int, string) { return http.StatusServiceUnavailable, "600" })
	r := newRig(t, morning, nil, withCollector(col))
	r.start()
	r.waitTrace("sync") // refused: retry in 10 minutes
	r.stop()
	r.clock.Advance(4 * time.Minute)
	r.start()
	r.waitTrace("sync-ready") // the restored schedule is armed
	if requests, _ := col.Counts(); requests != 1 {
		t.Fatalf("%d requests: the restart tried at once", requests)
	}
	// Retry-After: 600 is a wait of 10 to 15 minutes (docs/protocol.md plus jitter); 4 are gone.
	d, ok := r.clock.nextTimer()
	if !ok || d < 6*time.Minute-time.Second || d > 11*time.Minute {
		t.Fatalf("after the restart the next attempt is in %v (armed %v), want the 6 to 11 minutes left", d, ok)
	}
	col.SetFail(nil)
	r.clock.Advance(d)
	r.waitTrace("sync")
	if _, n := col.Counts(); n != 1 {
		t.Fatal("the genesis was not delivered after the backoff")
	}
}

// TestSyncOnNetworkUp: NetworkManager's StateChanged to connected-global, from its
// owner, starts an attempt at once during a backoff (not against a server's
// Retry-After).
func TestSyncOnNetworkUp(t *testing.T) {
	col := testenv.StartCollector(t)
	col.SetFail(func(int) (int, string) { return http.StatusBadGateway, "" })
	r := newRig(t, morning, power, withCollector(col))
	nm := r.connect("org.freedesktop.NetworkManager")
	r.start()
	r.waitTrace("sync") // the network is down: back off
	col.SetFail(nil)
	// Another connection claiming the network is up is not NetworkManager.
	spoof := r.connect("")
	spoof.Emit("/org/freedesktop/NetworkManager", "org.freedesktop.NetworkManager.StateChanged", uint32(70))
	time.Sleep(300 * time.Millisecond) // proving that nothing happens takes a wait
	if requests, _ := col.Counts(); requests != 1 {
		t.Fatalf("a StateChanged from a stranger started an upload (%d requests)", requests)
	}
	if err := nm.Emit("/org/freedesktop/NetworkManager", "org.freedesktop.NetworkManager.StateChanged", uint32(70)); err != nil {
		t.Fatal(err)
	}
	r.waitTrace("sync")
	if requests, n := col.Counts(); n != 1 || requests != 2 {
		t.Fatalf("after the network came up: %d records in %d requests, want 1 in 2", n, requests)
	}
}

// TestSyncRefusals: a refusal that leaves the server without a link (bad_signature)
// breaks the chain: the agent continues in a new epoch. A refusal for content
// (stale) breaks nothing.
func TestSyncRefusals(t *testing.T) {
	for _, tc := range []struct {
		reason    string
		wantEpoch uint32
	}{{"bad_signature", 2}, {"stale", 1}} {
		t.Run(tc.reason, func(t *testing.T) {
			col := testenv.StartCollector(t)
			col.SetNow(func() int64 { return morning.Unix() })
			col.SetVerdict(func(rec *proof.Record) (string, string) {
				if rec.Epoch == 1 && rec.Seq == 2 {
					return "rejected", tc.reason
				}
				return "", ""
			})
			r := newRig(t, morning, power, withCollector(col))
			r.start()
			r.waitTrace("sync") // the genesis
			r.at("09:00:00")
			r.use(time.Minute)
			r.at("00:00:00")
			r.waitMinted()
			r.waitTrace("sync") // the day, refused
			st, err := r.a.Status(context.Background())
			if err != nil || st.Epoch != tc.wantEpoch || st.DeadLetter != 1 {
				t.Fatalf("after a %s refusal: epoch %d, dead-letter %d (%v)", tc.reason, st.Epoch, st.DeadLetter, err)
			}
		})
	}
}
