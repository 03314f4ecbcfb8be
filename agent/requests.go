package agent

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"amos.example/amosd/agent/dbusapi"
	"amos.example/amosd/agent/identity"
	"amos.example/amosd/agent/timetrust"
	"amos.example/amosd/proof"
	"amos.example/amosd/sources"
)

// do runs fn on the agent's goroutine and waits for it.
func (a *Agent) do(ctx context.Context, fn func()) error {
	done := make(chan struct{})
	select {
	case a.reqs <- func() { fn(); close(done) }:
	case <-a.stopped:
		return ErrNotRunning
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Report accounts an event reported over amosd's API by a trusted caller.
func (a *Agent) Report(ctx context.Context, name string) error {
	kind, ok := dbusapi.ReportEvent(name)
	if !ok {
		return fmt.Errorf("unknown event %q: want screen_on, screen_off, unlocked, locked or input", name)
	}
	return a.do(ctx, func() { a.onEvent(sources.Event{Source: "api", Kind: kind}) })
}

// SetConsent grants or revokes the owner's consent (docs/eligibility.md). Revoking discards the
// day's tally and every record not yet uploaded; the chain then continues in a new
// epoch, since the server will never see the discarded records.
func (a *Agent) SetConsent(ctx context.Context, granted bool) error {
	var err error
	if e := a.do(ctx, func() { err = a.setConsent(granted) }); e != nil {
		return e
	}
	return err
}

func (a *Agent) setConsent(granted bool) error {
	now := a.clock.Boottime()
	if granted {
		if _, err := a.st.SetConsent(true); err != nil {
			return err
		}
		a.keepConsent(true)
		if !a.consent {
			a.consent = true
			a.consentNow.Store(true)
			a.meter.counting = true
			a.meter.at = now
			a.meter.newDay(a.dateFloor(a.today(now)))
			a.logf("consent: granted")
		}
		a.ensureGenesis()
		a.save("consent")
		a.scheduleSave()
		return nil
	}
	discarded, err := a.st.SetConsent(false)
	if err != nil {
		return err
	}
	a.keepConsent(false)
	a.consent = false
	a.consentNow.Store(false)
	a.meter.counting = false
	a.meter.newDay(0) // everything of the day goes
	a.meter.dirty = false
	if a.saveArmed {
		a.saveTimer.Stop()
		a.saveArmed = false
	}
	a.logf("consent: revoked; discarded the day's tally and %d unsent records", discarded)
	if discarded > 0 && !a.needGenesis {
		// The server will never see the discarded records: continue in a new epoch.
		a.epoch++
		a.needGenesis, a.genesisReason = true, proof.ReasonStoreRecreated
		if err := identity.WriteEpoch(a.cfg.KeyDir, a.epoch); err != nil {
			return fmt.Errorf("key_dir %s: write epoch: %w", a.cfg.KeyDir, err)
		}
	}
	return nil
}

// Flush makes one sync attempt now and waits for it (docs/dbus-api.md): it returns the
// records the server accepted and those still queued.
func (a *Agent) Flush(ctx context.Context) (accepted, queued uint32, err error) {
	if a.flush == nil {
		return 0, 0, errors.New("no sync loop is running")
	}
	return a.flush(ctx)
}

// SetServerTime judges the server_time of a 200 answer received at CLOCK_BOOTTIME at
// (docs/protocol.md, "Trusted time") and returns the anchor believed after it, to be
// kept in the sync state; ok is false while none is believed.
func (a *Agent) SetServerTime(ctx context.Context, serverTime int64, at time.Duration) (timetrust.Anchor, bool, error) {
	// What fn finds is read only once do says fn ran: when ctx ends first, fn may still
	// run on the agent's goroutine, and must not write what the caller reads.
	var res struct {
		anchor timetrust.Anchor
		ok     bool
	}
	err := a.do(ctx, func() {
		a.step(at)
		before, _ := a.trusted(at)
		wall := a.clock.Now().Add(at - a.clock.Boottime())
		outcome, why := a.time.Observe(serverTime, at, wall)
		res.anchor, res.ok = a.time.Anchor()
		switch outcome {
		case timetrust.Ignored, timetrust.Held:
			a.logf("clock: %s", why)
			return
		case timetrust.Corrected:
			a.logf("clock: %s", why)
		}
		after, _ := a.trusted(at)
		if d := after.Sub(before); (d > ClockJump || -d > ClockJump) && a.consent {
			// The day was counted on a clock the server now corrects by more than
			// 5 minutes: its record says so.
			a.logf("clock: the server corrects trusted time by %v", d.Round(time.Second))
			a.meter.tally.Flags |= proof.FlagClockJumped
			a.meter.dirty = true
		}
		now := a.clock.Boottime()
		a.correctDates(now)
		a.wallRef = a.wallOffset(now)
		if a.alarm != nil {
			a.armMidnight(a.alarm, now)
		}
	})
	if err != nil {
		return timetrust.Anchor{}, false, err
	}
	return res.anchor, res.ok, nil
}

// correctDates undoes dates reached on a time that believed time now contradicts
// (docs/protocol.md, "Trusted time"): a tally dated after today is dropped and starts
// again at today; if a date after today was even minted, the chain continues in a new
// epoch (genesis reason clock_corrected) whose dates start again from today.
func (a *Agent) correctDates(now time.Duration) {
	today := a.today(now)
	future := a.headOK && a.head.LastDate > today
	if !future && !(a.meter.tally.Date.Valid() && a.meter.tally.Date > today) {
		return
	}
	if a.consent && a.meter.tally.Date > today {
		t := a.meter.tally
		a.logf("clock: dropped the tally of %s, a wrong date (today is %s): %d s, %d unlocks, %d screen_ons", t.Date, today, t.InteractiveSeconds, t.Unlocks, t.ScreenOns)
	}
	if future && !a.newEpochForClock(today) {
		return
	}
	a.meter.newDay(a.dateFloor(today))
	a.meter.at = now
	a.meter.dirty = a.consent
	if a.consent {
		a.meter.tally.Flags |= proof.FlagClockJumped // the date is counted from the correction on
	}
	a.save("clock")
}

// newEpochForClock continues the chain in a new epoch after dates later than today
// were minted, and lowers the date floor to the day before today: the collector counts
// a date reported in two epochs once, and the new epoch's dates must be able to follow
// the real date. It reports false if that could not be written (tried again at the
// next believed server_time).
func (a *Agent) newEpochForClock(today proof.Date) bool {
	if !a.needGenesis {
		a.epoch = max(a.epoch, a.head.Epoch) + 1
		a.needGenesis, a.genesisReason = true, proof.ReasonClockCorrected
		if err := identity.WriteEpoch(a.cfg.KeyDir, a.epoch); err != nil {
			a.logf("clock: key_dir %s: write epoch: %v", a.cfg.KeyDir, err)
			a.epoch--
			a.needGenesis = false
			return false
		}
	}
	last := a.head.LastDate
	floor := proof.DateOf(today.Start(a.cfg.UTCOffsetMinutes).Add(-time.Hour), a.cfg.UTCOffsetMinutes)
	if err := a.st.LowerDateFloor(floor); err != nil {
		a.logf("clock: lower the date floor to %s: %v", floor, err)
		return false
	}
	a.head.LastDate = floor
	a.logf("clock: %s was minted on a wrong clock (today is %s): epoch %d, dates after %s", last, today, a.epoch, floor)
	return true
}

// Status returns the agent's state, with the day's tally accounted up to now.
func (a *Agent) Status(ctx context.Context) (dbusapi.Status, error) {
	var s dbusapi.Status
	var err error
	if e := a.do(ctx, func() { s, err = a.status() }); e != nil {
		return dbusapi.Status{}, e
	}
	return s, err
}

func (a *Agent) status() (dbusapi.Status, error) {
	now := a.clock.Boottime()
	a.step(now)
	cnt, err := a.st.Counts()
	if err != nil {
		return dbusapi.Status{}, err
	}
	s := dbusapi.Status{
		Version:        a.opts.Version,
		DeviceID:       a.id.DeviceID.String(),
		Epoch:          a.epoch,
		Queued:         uint32(cnt.Queued),
		DeadLetter:     uint32(cnt.DeadLetters),
		Consent:        a.consent,
		ClockTrusted:   a.trustedNow(),
		SpoofedSignals: a.spoofed.Load(),
		StoreBytes:     uint64(cnt.FileBytes),
		CertProblem:    a.id.CertProblem,
		Sources:        []string{},
	}
	if a.headOK && a.head.Epoch == a.epoch {
		s.LastSeq = a.head.Seq
	}
	if a.consent {
		s.TodayDate = uint32(a.meter.tally.Date)
		s.TodayInteractiveSeconds = a.meter.tally.InteractiveSeconds
	}
	for name := range a.meter.caps {
		s.Sources = append(s.Sources, name)
	}
	slices.Sort(s.Sources)
	if r, ok, _ := a.st.LastRecovery(); ok {
		s.Recovery = &r
		if o, ok, _ := a.st.RecoveryOutcome(); ok {
			s.RecoveryOutcome = &o
		}
	}
	sync, err := a.st.Sync()
	if err != nil {
		return dbusapi.Status{}, err
	}
	s.LastSyncUnix, s.LastSyncResult, s.NextRetryUnix = sync.LastAttempt, sync.LastResult, sync.NextRetry
	return s, nil
}
