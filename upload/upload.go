// Package upload is the step between the queue and the network, the same for amosd
// and the fleet simulator: peek the oldest batch, upload it, settle the answer and the
// sync state in one store transaction, and say how long to wait before the next try.
package upload

import (
	"context"
	"errors"
	"fmt"
	"time"

	"amos.example/amosd/proof"
	"amos.example/amosd/store"
	"amos.example/amosd/transport"
)

// Queue is where records wait: amosd's store.Store, or a queue in memory.
type Queue interface {
	// Peek returns the oldest queued records, at most maxRecords and maxBytes.
	Peek(maxRecords, maxBytes int) ([]store.Item, error)
	// Settle applies an upload's outcome (and the sync state) in one transaction.
	Settle(st store.Settlement) (store.SettleResult, error)
}

// Client uploads a batch: transport.Client.
type Client interface {
	Upload(ctx context.Context, records [][]byte) (*transport.Result, error)
}

// Clock is the time the engine reads: the wall clock for the sync state, and
// CLOCK_BOOTTIME for when an answer arrived (it counts suspended time).
type Clock interface {
	Now() time.Time
	Boottime() time.Duration
}

// Options configure an Engine; every field is required but State.
type Options struct {
	Queue        Queue
	Client       Client
	Clock        Clock
	Backoff      *transport.Backoff
	BatchRecords int           // at most this many records per upload
	Timeout      time.Duration // bounds one upload
	BootID       [16]byte      // the boot the sync state's server time is noted in
	State        store.SyncState
	// Trust judges an answer's server_time, received at CLOCK_BOOTTIME received, and
	// returns the believed anchor to keep in the sync state (ok false: keep the one
	// kept). Nil keeps every server_time (the fleet simulator).
	Trust func(ctx context.Context, serverTime int64, received time.Duration) (anchor int64, at time.Duration, ok bool)
}

// Engine runs uploads one step at a time. It is not safe for concurrent use: one
// upload is in flight at a time.
type Engine struct {
	o          Options
	state      store.SyncState
	serverWait time.Duration
}

// New returns an engine that starts from o.State (the sync state a store kept, so
// that the backoff survives a restart).
func New(o Options) *Engine {
	o.Backoff.SetInterval(o.State.BackoffInterval)
	return &Engine{o: o, state: o.State}
}

// Step is what one step did.
type Step struct {
	// Empty: nothing was queued, nothing was sent; the backoff is reset.
	Empty bool
	// Sent is the number of records uploaded; Full says the batch was as large as
	// allowed, so that more may be queued behind it.
	Sent int
	Full bool
	// Result is the upload's outcome (nil when nothing was sent).
	Result *transport.Result
	// UploadErr is the upload's error: a transport error, or *transport.RetryAfterError.
	UploadErr error
	// StoreErr is a failure to read the queue or to settle the answer; Wait then
	// holds the next backoff step.
	StoreErr error
	// OK: the upload succeeded and the server kept nothing back (no chain_gap).
	OK bool
	// Wait is how long to wait before the next attempt when it did not go well (a
	// backoff step, or the server's Retry-After); 0 when OK.
	Wait time.Duration
	// Settled counts what the store settled.
	Settled store.SettleResult
	// Received is CLOCK_BOOTTIME when the answer arrived.
	Received time.Duration
}

// Err is the step's error, the store's before the upload's.
func (s *Step) Err() error {
	if s.StoreErr != nil {
		return s.StoreErr
	}
	return s.UploadErr
}

// Step peeks the oldest batch, uploads it, and settles the answer with the new sync
// state in one store transaction, so that a kill loses at most one answer.
func (e *Engine) Step(ctx context.Context) Step {
	items, err := e.o.Queue.Peek(e.o.BatchRecords, proof.MaxBatchBytes)
	if err != nil {
		return Step{StoreErr: err, Wait: e.o.Backoff.Next()}
	}
	if len(items) == 0 {
		e.o.Backoff.Reset()
		return Step{Empty: true}
	}
	recs := make([][]byte, len(items))
	for i, it := range items {
		recs[i] = it.Record
	}
	uctx, cancel := context.WithTimeout(ctx, e.o.Timeout)
	res, uerr := e.o.Client.Upload(uctx, recs)
	cancel()
	st := Step{Sent: len(items), Full: len(items) >= e.o.BatchRecords, Result: res, UploadErr: uerr, Received: e.o.Clock.Boottime()}
	now := e.o.Clock.Now()
	settle := store.Settlement{}
	for _, id := range res.Acked {
		settle.Acked = append(settle.Acked, store.RecordID{Epoch: id.Epoch, Seq: id.Seq})
	}
	for _, d := range res.Dead {
		settle.Dead = append(settle.Dead, store.Refusal{ID: store.RecordID{Epoch: d.ID.Epoch, Seq: d.ID.Seq}, Reason: d.Reason})
	}
	e.state.LastAttempt = now.Unix()
	st.OK = uerr == nil && len(res.Kept) == 0
	switch {
	case st.OK:
		e.o.Backoff.Reset()
		e.state.LastSuccess = now.Unix()
		e.state.LastResult = fmt.Sprintf("ok: %d accepted, %d refused", len(res.Acked), len(res.Dead))
	case uerr == nil:
		st.Wait = e.o.Backoff.Next()
		e.state.LastResult = fmt.Sprintf("%d accepted, %d refused, %d to retry (chain_gap)", len(res.Acked), len(res.Dead), len(res.Kept))
	default:
		var ra *transport.RetryAfterError
		if errors.As(uerr, &ra) {
			e.o.Backoff.RetryAfter(ra.After)
			e.serverWait = st.Received + ra.After
		}
		st.Wait = e.o.Backoff.Next()
		e.state.LastResult = uerr.Error()
	}
	if res.ServerTime != 0 {
		anchor, at, ok := res.ServerTime, st.Received, true
		if e.o.Trust != nil {
			anchor, at, ok = e.o.Trust(ctx, res.ServerTime, st.Received)
		}
		if ok {
			e.state.ServerTime, e.state.ServerUptimeMS, e.state.ServerBootID = anchor, uint64(at/time.Millisecond), e.o.BootID
		}
	}
	e.state.BackoffInterval = e.o.Backoff.Interval()
	e.state.NextRetry = 0
	if st.Wait > 0 {
		e.state.NextRetry = now.Add(st.Wait).Unix()
	}
	state := e.state
	settle.Sync = &state
	if st.Settled, err = e.o.Queue.Settle(settle); err != nil {
		st.StoreErr = fmt.Errorf("apply the answer: %w", err)
		st.Wait = e.o.Backoff.Next()
	}
	return st
}

// State is the sync state as last settled: last attempt and success, their result,
// the backoff, the next retry, the latest server time.
func (e *Engine) State() store.SyncState { return e.state }

// ServerWait is the CLOCK_BOOTTIME before which the server asked not to be called
// (its last Retry-After); 0 if it never did.
func (e *Engine) ServerWait() time.Duration { return e.serverWait }

// NextBackoff advances the backoff and returns its next wait.
func (e *Engine) NextBackoff() time.Duration { return e.o.Backoff.Next() }
