package agent

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"amos.example/amosd/agent/clock"
	"amos.example/amosd/agent/dbusapi"
	"amos.example/amosd/agent/identity"
	"amos.example/amosd/proof"
	"amos.example/amosd/store"
	"amos.example/amosd/transport"
	"amos.example/amosd/upload"
)

// syncer is the sync loop of docs/protocol.md: at most one upload in flight, attempted when a
// record is minted, when the network comes up, on Flush, and when the backoff timer
// fires. With an empty queue nothing is scheduled.
type syncer struct {
	a       *Agent
	client  *transport.Client
	bo      *transport.Backoff
	up      *upload.Engine // peek, upload, settle: created by Run from the stored state
	wake    chan struct{}  // a record was minted
	spread  chan struct{}  // midnight minted a day: upload within sync.spread
	netUp   chan struct{}  // the network came up
	flushes chan chan flushResult
	timer   clock.Timer
	armed   bool
}

type flushResult struct {
	accepted, queued uint32
	err              error
}

func newSyncer(a *Agent) (*syncer, error) {
	c, err := transport.New(transport.Config{
		ServerURL:         a.cfg.ServerURL,
		CAFile:            a.cfg.CAFile,
		AllowInsecureHTTP: a.cfg.AllowInsecureHTTP,
		Timeout:           time.Duration(a.cfg.Sync.Timeout),
		BatchRecords:      a.cfg.Sync.BatchRecords,
		DNSServers:        a.cfg.DNSServers,
		UserAgent:         "amosd/" + a.opts.Version,
	})
	if err != nil {
		return nil, err
	}
	s := &syncer{a: a, client: c, wake: make(chan struct{}, 1), spread: make(chan struct{}, 1), netUp: make(chan struct{}, 1), flushes: make(chan chan flushResult),
		bo: transport.NewBackoff(time.Duration(a.cfg.Sync.InitialBackoff), time.Duration(a.cfg.Sync.MaxBackoff))}
	return s, nil
}

// poke asks for an attempt soon; it never blocks.
func (s *syncer) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// pokeSpread asks for an attempt at a random moment within sync.spread (docs/protocol.md: a
// zone's phones all mint at one midnight, and uploading at once made it the busiest
// minute of the day), unless one is due sooner; it never blocks.
func (s *syncer) pokeSpread() {
	select {
	case s.spread <- struct{}{}:
	default:
	}
}

// networkUp asks for an attempt now, even during a backoff, unless the server asked
// for a wait that has not passed; it never blocks.
func (s *syncer) networkUp() {
	select {
	case s.netUp <- struct{}{}:
	default:
	}
}

// flush runs one attempt now and waits for it.
func (s *syncer) flush(ctx context.Context) (uint32, uint32, error) {
	reply := make(chan flushResult, 1)
	select {
	case s.flushes <- reply:
	case <-ctx.Done():
		return 0, 0, ctx.Err()
	}
	select {
	case r := <-reply:
		return r.accepted, r.queued, r.err
	case <-ctx.Done():
		return 0, 0, ctx.Err()
	}
}

func (s *syncer) timerC() <-chan time.Time {
	if !s.armed {
		return nil
	}
	return s.timer.C()
}

// Run is the loop; the backoff survives a restart through the store, so that a daemon
// that crash-loops cannot hammer the server.
func (s *syncer) Run(ctx context.Context) error {
	st, err := s.a.st.Sync()
	if err != nil {
		return err
	}
	s.up = upload.New(upload.Options{Queue: s.a.st, Client: s.client, Clock: s.a.clock, Backoff: s.bo,
		BatchRecords: s.a.cfg.Sync.BatchRecords, Timeout: dbusapi.FlushTimeout, BootID: s.a.bootID, State: st,
		Trust: func(ctx context.Context, serverTime int64, at time.Duration) (int64, time.Duration, bool) {
			anchor, ok, err := s.a.SetServerTime(ctx, serverTime, at)
			return anchor.ServerTime, anchor.At, ok && err == nil
		}})
	if wait := time.Unix(st.NextRetry, 0).Sub(s.a.clock.Now()); st.NextRetry != 0 && wait > 0 {
		// A wall clock that moved since cannot stretch the wait past what any
		// schedule allows: 1.5 × max_backoff, or a whole Retry-After.
		s.arm(min(wait, max(time.Duration(s.a.cfg.Sync.MaxBackoff)*3/2, transport.MaxRetryAfter)))
	} else {
		s.poke() // whatever is queued goes now
	}
	s.a.trace("sync-ready")
	defer s.disarm()
	worked := true // the start
	for {
		if worked && s.a.opts.Idle != nil {
			s.a.opts.Idle()
		}
		worked = false
		select {
		case <-s.wake:
			if !s.armed { // during a backoff, the timer decides
				s.attempt(ctx)
				worked = true
			}
		case <-s.spread:
			if spread := time.Duration(s.a.cfg.Sync.Spread); !s.armed && spread > 0 {
				d := rand.N(spread)
				s.a.logf("sync: the day's record goes in %v (sync.spread %v)", d.Round(time.Second), spread)
				s.arm(d)
				s.a.trace("sync-spread")
			} else if !s.armed {
				s.attempt(ctx)
			}
		case <-s.netUp:
			// A network that comes up does not override the server's Retry-After.
			if s.a.clock.Boottime() >= s.up.ServerWait() {
				s.disarm()
				s.attempt(ctx)
				worked = true
			}
		case <-s.timerC():
			s.armed = false
			s.attempt(ctx)
			worked = true
		case reply := <-s.flushes:
			accepted, queued, err := s.attempt(ctx)
			reply <- flushResult{accepted, queued, err}
			worked = true
		case <-ctx.Done():
			return nil
		}
	}
}

func (s *syncer) arm(d time.Duration) {
	if s.timer == nil {
		s.timer = s.a.clock.NewTimer(d)
	} else {
		s.timer.Stop()
		s.timer.Reset(d)
	}
	s.armed = true
}

func (s *syncer) disarm() {
	if s.armed {
		s.timer.Stop()
		s.armed = false
	}
}

// attempt uploads the queue, batch by batch, oldest first, until it is empty or an
// upload fails; each batch's answer is settled in one store transaction (upload.Engine).
func (s *syncer) attempt(ctx context.Context) (accepted, queued uint32, err error) {
	if !s.a.consentNow.Load() {
		s.disarm() // nothing is uploaded without consent (docs/eligibility.md)
		return 0, 0, errors.New("no consent: nothing is uploaded")
	}
	for {
		step := s.up.Step(ctx)
		switch {
		case step.Empty:
			s.disarm()
			return accepted, 0, nil
		case step.Result == nil: // the queue could not be read
			s.arm(step.Wait)
			return accepted, 0, step.StoreErr
		case step.StoreErr != nil:
			s.a.logf("sync: %v", step.StoreErr)
			s.arm(step.Wait)
			return accepted, 0, step.StoreErr
		}
		res := step.Result
		accepted += uint32(step.Settled.Acked)
		cnt, cerr := s.a.st.Counts()
		if cerr == nil {
			queued = uint32(cnt.Queued)
		}
		if len(res.Dead) > 0 {
			s.a.logf("sync: %d records refused for good: %v", len(res.Dead), res.Dead)
			s.a.chainBroken(ctx, res.Dead)
		}
		if s.a.api != nil {
			s.a.api.Emit("Synced", accepted, queued)
		}
		state := s.up.State()
		if !step.OK {
			s.a.logf("sync: %s; next attempt in %s", state.LastResult, step.Wait.Round(time.Second))
			s.arm(step.Wait)
			s.a.trace("sync")
			return accepted, queued, step.UploadErr
		}
		s.a.logf("sync: %s, %d queued", state.LastResult, queued)
		s.a.trace("sync")
		if !step.Full {
			s.disarm()
			return accepted, queued, nil
		}
	}
}

// chainBreaking are the refusals after which the server holds no link for the record,
// so that it can never take a later record of the same epoch (it would answer
// chain_gap forever). Records refused for their content (bad_cert, unknown_maker,
// future_date, stale) are still linked by the server and break nothing.
var chainBreaking = map[string]bool{
	"bad_format": true, "bad_signature": true, "chain_fork": true, "unknown_device": true,
	transport.ReasonTooLarge: true, "chain_broken": true,
}

// chainBroken handles records the server refused for good. After a refusal that breaks
// the chain, later records of the same epoch are dead-lettered too, as "chain_broken",
// and if the epoch is the current one, the chain continues in a new epoch.
func (a *Agent) chainBroken(ctx context.Context, dead []transport.Refusal) {
	first := map[uint32]uint64{} // epoch → lowest refused seq that breaks the chain
	for _, d := range dead {
		if !chainBreaking[d.Reason] {
			continue
		}
		if s, ok := first[d.ID.Epoch]; !ok || d.ID.Seq < s {
			first[d.ID.Epoch] = d.ID.Seq
		}
	}
	if len(first) == 0 {
		return
	}
	items, err := a.st.Peek(1<<30, 1<<30)
	if err != nil {
		a.logf("sync: %v", err)
		return
	}
	var later []store.Refusal
	for _, it := range items {
		if s, ok := first[it.ID.Epoch]; ok && it.ID.Seq > s {
			later = append(later, store.Refusal{ID: it.ID, Reason: "chain_broken"})
		}
	}
	if len(later) > 0 {
		if _, err := a.st.Settle(store.Settlement{Dead: later}); err != nil {
			a.logf("sync: %v", err)
		}
		a.logf("sync: %d later records of the broken chain dead-lettered", len(later))
	}
	a.do(ctx, func() {
		if _, broken := first[a.epoch]; !broken || a.needGenesis {
			return
		}
		a.epoch++
		a.needGenesis, a.genesisReason = true, proof.ReasonStoreRecreated
		if err := identity.WriteEpoch(a.cfg.KeyDir, a.epoch); err != nil {
			a.logf("sync: write epoch: %v", err)
			return
		}
		a.logf("sync: the chain of epoch %d is broken; continuing in epoch %d", a.epoch-1, a.epoch)
		if a.consent {
			a.ensureGenesis()
		}
	})
}
