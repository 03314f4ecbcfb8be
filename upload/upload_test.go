package upload

import (
	"context"
	"crypto/sha256"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"amos.example/amosd/proof"
	"amos.example/amosd/rigs/testenv"
	"amos.example/amosd/store"
	"amos.example/amosd/transport"
)

// testClock is the clock the test sets.
type testClock struct {
	now  time.Time
	boot time.Duration
}

func (c *testClock) Now() time.Time          { return c.now }
func (c *testClock) Boottime() time.Duration { return c.boot }

// chain signs a device's genesis and days.
type chain struct {
	key  *proof.KeySigner
	seq  uint64
	prev proof.Hash
	date proof.Date
}

func newChain(t *testing.T) *chain {
	seed := sha256.Sum256([]byte("upload test " + t.Name()))
	k, err := proof.NewKeySigner(seed[:])
	if err != nil {
		t.Fatal(err)
	}
	return &chain{key: k, date: 20280201}
}

func (c *chain) next(t *testing.T) []byte {
	r := &proof.Record{DeviceID: c.key.PublicKey().DeviceID(), Epoch: 1, Seq: c.seq + 1, PrevHash: c.prev, MintedAt: 1830000000}
	if c.seq == 0 {
		r.Body = &proof.Genesis{PublicKey: c.key.PublicKey(), Reason: proof.ReasonFirstStart}
	} else {
		r.Body = &proof.ActivityDay{Date: c.date, UTCOffsetMinutes: 480, InteractiveSeconds: 600, Unlocks: 3, ScreenOns: 4, ActiveHours: 1 << 20}
		c.date = c.date.Next()
	}
	b, err := r.Sign(c.key)
	if err != nil {
		t.Fatal(err)
	}
	c.seq, c.prev = r.Seq, proof.HashRecord(b)
	return b
}

// rig is a real store, a real transport.Client over TLS and a collector whose
// answers the test decides.
type rig struct {
	st    *store.Store
	col   *testenv.Collector
	clock *testClock
	bo    *transport.Backoff
	e     *Engine
	c     *chain
}

func newRig(t *testing.T, batch int) *rig {
	st, err := store.Open(store.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	col := testenv.StartCollector(t)
	col.SetNow(func() int64 { return 1830000100 })
	client, err := transport.New(transport.Config{ServerURL: col.URL, CAFile: col.CAFile, Timeout: 10 * time.Second, BatchRecords: batch})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.CloseIdleConnections)
	r := &rig{st: st, col: col, clock: &testClock{now: time.Unix(1830000000, 0), boot: time.Hour}, c: newChain(t),
		bo: transport.NewBackoff(30*time.Second, 6*time.Hour)}
	r.e = New(Options{Queue: st, Client: client, Clock: r.clock, Backoff: r.bo, BatchRecords: batch, Timeout: 20 * time.Second,
		BootID: [16]byte{7}, State: store.SyncState{BackoffInterval: 2 * time.Minute}})
	return r
}

func (r *rig) mint(t *testing.T, n int) {
	for range n {
		if _, err := r.st.Mint(r.c.next(t), nil); err != nil {
			t.Fatal(err)
		}
	}
}

func (r *rig) queued(t *testing.T) int {
	c, err := r.st.Counts()
	if err != nil {
		t.Fatal(err)
	}
	return c.Queued
}

// TestStep: each outcome of one step, on a real store and over real TLS.
func TestStep(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	t.Run("empty queue", func(t *testing.T) {
		r := newRig(t, 256)
		if s := r.e.Step(ctx); !s.Empty || s.Sent != 0 || s.Err() != nil || r.bo.Interval() != 0 {
			t.Fatalf("step %+v, backoff %v", s, r.bo.Interval())
		}
		if req, _ := r.col.Counts(); req != 0 {
			t.Errorf("%d requests for an empty queue", req)
		}
	})

	t.Run("accepted, in batches", func(t *testing.T) {
		r := newRig(t, 2)
		r.mint(t, 3)
		s := r.e.Step(ctx)
		if !s.OK || s.Sent != 2 || !s.Full || s.Settled.Acked != 2 || s.Wait != 0 || s.Received != time.Hour {
			t.Fatalf("first step %+v", s)
		}
		r.clock.now = r.clock.now.Add(time.Second)
		s = r.e.Step(ctx)
		if !s.OK || s.Sent != 1 || s.Full || s.Settled.Acked != 1 || r.queued(t) != 0 {
			t.Fatalf("second step %+v, %d queued", s, r.queued(t))
		}
		saved, err := r.st.Sync()
		if err != nil {
			t.Fatal(err)
		}
		want := store.SyncState{LastAttempt: 1830000001, LastSuccess: 1830000001, LastResult: "ok: 1 accepted, 0 refused",
			ServerTime: 1830000100, ServerUptimeMS: 3600000, ServerBootID: [16]byte{7}}
		if saved != want || r.e.State() != want {
			t.Errorf("sync state stored %+v, engine %+v, want %+v", saved, r.e.State(), want)
		}
	})

	t.Run("retry-after", func(t *testing.T) {
		r := newRig(t, 256)
		r.mint(t, 2)
		r.col.SetFail(func(int) (int, string) { return http.StatusServiceUnavailable, "120" })
		s := r.e.Step(ctx)
		var ra *transport.RetryAfterError
		if s.OK || !errors.As(s.UploadErr, &ra) || ra.After != 2*time.Minute || s.Wait < 2*time.Minute || s.Wait > 3*time.Minute {
			t.Fatalf("step %+v (%v)", s, s.UploadErr)
		}
		if r.e.ServerWait() != time.Hour+2*time.Minute || r.queued(t) != 2 {
			t.Errorf("server wait %v, %d queued", r.e.ServerWait(), r.queued(t))
		}
		saved, _ := r.st.Sync()
		if saved.NextRetry != r.clock.now.Add(s.Wait).Unix() || saved.LastSuccess != 0 || !strings.Contains(saved.LastResult, "503") {
			t.Errorf("sync state %+v", saved)
		}
	})

	t.Run("kept and refused", func(t *testing.T) {
		r := newRig(t, 256)
		r.mint(t, 3)
		r.col.SetVerdict(func(rec *proof.Record) (string, string) {
			switch rec.Seq {
			case 2:
				return "rejected", "bad_signature"
			case 3:
				return "retry", "chain_gap"
			}
			return "", ""
		})
		s := r.e.Step(ctx)
		if s.OK || s.UploadErr != nil || s.Settled.Acked != 1 || s.Settled.Dead != 1 || len(s.Result.Kept) != 1 {
			t.Fatalf("step %+v", s)
		}
		if s.Wait < time.Minute || s.Wait > 3*time.Minute { // the stored interval, 2 min, ± 50 %
			t.Errorf("wait %v after a kept record (the stored backoff was 2 min)", s.Wait)
		}
		dead, err := r.st.DeadLetters(10)
		if err != nil || len(dead) != 1 || dead[0].Reason != "bad_signature" || r.queued(t) != 1 {
			t.Errorf("dead-letter %+v %v, %d queued", dead, err, r.queued(t))
		}
		if got := r.e.State().LastResult; got != "1 accepted, 1 refused, 1 to retry (chain_gap)" {
			t.Errorf("last result %q", got)
		}
	})

	t.Run("closed store", func(t *testing.T) {
		r := newRig(t, 256)
		r.mint(t, 1)
		r.st.Close()
		if s := r.e.Step(ctx); s.StoreErr == nil || s.Result != nil || s.Wait <= 0 {
			t.Fatalf("step %+v", s)
		}
	})
}
