package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"amos.example/amosd/agent/clock"
	"amos.example/amosd/agent/config"
	"amos.example/amosd/agent/dbusapi"
	"amos.example/amosd/agent/identity"
	"amos.example/amosd/agent/timetrust"
	"amos.example/amosd/proof"
	"amos.example/amosd/sources"
	"amos.example/amosd/store"
)

// Timing of docs/eligibility.md, docs/protocol.md.
const (
	// SaveWithin bounds the interaction a power loss can take: the tally is saved at
	// most this long after it changed, and while the owner interacts.
	SaveWithin = 60 * time.Second
	// ClockJump is how far the wall clock may move against CLOCK_BOOTTIME in a day
	// before the day's record carries FlagClockJumped.
	ClockJump = 5 * time.Minute
)

// ErrNotRunning is returned by requests made while the agent's loop is not running.
var ErrNotRunning = errors.New("agent is not running")

// Source is an activity source that runs on its own (evdev); the D-Bus sources run
// on the Bus.
type Source interface {
	Name() string
	Run(ctx context.Context, emit sources.Emit) error
}

// Options configure an Agent.
type Options struct {
	Config  *config.Config
	Clock   clock.Clock
	Version string
	// Built is when the binary was built (zero: timetrust.DefaultBuild); no server_time
	// before it is believed (docs/protocol.md, "Trusted time").
	Built time.Time
	Logf  func(format string, args ...any)
	// Debuggable sets FlagDebuggable on every record; nil detects it (ro.debuggable).
	Debuggable *bool
	// Sources replaces the sources of the configuration (tests); nil builds them.
	Sources []Source
	// Observe is called on the agent's goroutine after each event is accounted.
	Observe func(sources.Event)
	// Minted is called on the agent's goroutine after each record is stored.
	Minted func(rec *proof.Record, res store.MintResult)
	// Idle is called when a part of the daemon goes back to waiting after work, which
	// is for hours on an idle phone: on the sync loop's goroutine after its start, an
	// upload attempt or a flush; on the agent's once the owner stopped interacting and
	// the tally is saved. `amosd run` returns the garbage of that work to the system
	// there, so that it does not stay resident while the daemon sleeps (README.md's budget table idle
	// memory). It may run on both goroutines at once.
	Idle func()
	// Trace is called after the agent handled its wall alarm ("alarm") or its save
	// timer ("save"), on its goroutine, and on the sync loop's once it has restored
	// its schedule ("sync-ready") and after each upload ("sync"); tests wait on it.
	Trace func(what string)
}

// Agent measures use, keeps the day's tally and mints the records.
type Agent struct {
	cfg     *config.Config
	clock   clock.Clock
	logf    func(string, ...any)
	opts    Options
	id      *identity.Identity
	st      *store.Store
	bootID  [16]byte
	debug   bool
	spoofed atomic.Uint64
	events  chan sources.Event
	reqs    chan func()
	running atomic.Bool
	stopped chan struct{}
	bus     *sources.Bus
	api     *dbusapi.Server
	fatal   chan error // a source that cannot go on stops the agent
	// flush runs one sync attempt; nil until a sync loop is attached.
	flush func(ctx context.Context) (accepted, queued uint32, err error)
	sync  *syncer // nil if the transport could not be configured
	// consentNow mirrors consent for the sync loop's goroutine.
	consentNow atomic.Bool
	alarm      clock.WallAlarm // the midnight alarm, while Run runs
	rollover   bool            // the wall alarm is being handled: a day minted now is midnight's

	// State of the loop goroutine.
	head          store.Head
	headOK        bool
	epoch         uint32              // the epoch records are minted in
	needGenesis   bool                // the epoch's genesis is not minted yet
	genesisReason proof.GenesisReason // reason of that genesis
	consent       bool
	meter         *meter
	time          *timetrust.Judge // the server_time believed in this boot
	wallRef       time.Duration    // wall clock minus CLOCK_BOOTTIME at the last check
	saveTimer     clock.Timer
	saveArmed     bool
	tallyLost     bool // the next tally starts with FlagTallyLost
	doubtful      bool // the restored tally is far ahead of the unconfirmed wall clock
	wiped         bool // the data partition was wiped: a new owner decides consent
	oldEpoch      uint32
}

// New loads the identity, opens the store, decides the epoch and restores the tally.
// Errors that an operator must fix wrap identity.ErrIdentity or config.ErrConfig.
func New(o Options) (*Agent, error) {
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	a := &Agent{cfg: o.Config, clock: o.Clock, logf: o.Logf, opts: o,
		events: make(chan sources.Event, 256), reqs: make(chan func()), stopped: make(chan struct{}),
		fatal: make(chan error, 1), time: timetrust.New(o.Built)}
	a.bootID = o.Clock.BootID()
	if o.Debuggable != nil {
		a.debug = *o.Debuggable
	} else {
		a.debug = detectDebuggable()
	}
	id, err := identity.Open(context.Background(), identity.OptionsFor(o.Config))
	if err != nil {
		return nil, err
	}
	a.id = id
	for _, w := range id.Warnings {
		a.logf("identity: %s", w)
	}
	if id.CertProblem != "" {
		a.logf("identity: maker certificate ignored: %s", id.CertProblem)
	}
	if id.Generated {
		a.logf("identity: generated a device key, device_id %s", id.DeviceID)
	}
	a.logf("identity: device_id %s, %s key in %s, attestation chain of %d certificates", id.DeviceID, id.PublicKey.Type(), id.Backend, len(id.Chain))
	st, err := store.Open(store.Options{Dir: o.Config.DataDir, MaxBytes: o.Config.MaxStoreBytes, Logf: a.logf})
	if err != nil {
		return nil, err
	}
	a.st = st
	if err := a.decideEpoch(); err != nil {
		st.Close()
		return nil, err
	}
	if err := a.restore(); err != nil {
		st.Close()
		return nil, err
	}
	return a, nil
}

// decideEpoch picks the epoch to mint in, and whether it needs its genesis (docs/protocol.md).
func (a *Agent) decideEpoch() error {
	fileEpoch, haveFile, ferr := identity.ReadEpoch(a.cfg.KeyDir)
	damaged := errors.Is(ferr, identity.ErrEpochDamaged)
	if ferr != nil && !damaged {
		return ferr
	}
	head, headOK, err := a.st.Head()
	if err != nil {
		return err
	}
	a.head, a.headOK = head, headOK
	if damaged {
		// Rebuilt, never trusted to continue: a new epoch cannot collide with one
		// the collector has seen; a reused one would be a fork (docs/store-and-epochs.md).
		fileEpoch, haveFile = rebuiltEpoch(head, headOK, a.clock.Now()), true
		a.logf("identity: %v; rebuilt as epoch %d", ferr, fileEpoch)
	}
	bump := func(reason proof.GenesisReason) {
		n := fileEpoch
		if headOK {
			n = max(n, head.Epoch)
		}
		a.oldEpoch, a.epoch, a.genesisReason = n, n+1, reason
	}
	switch {
	case a.st.Recovered() != nil:
		bump(proof.ReasonStoreRecreated)
		a.tallyLost = true
		a.logf("store: recreated after corruption (%s); starting epoch %d", a.st.Recovered().Cause, a.epoch)
	case a.id.Generated && haveFile:
		bump(proof.ReasonKeyRotated)
	case a.st.Created() && haveFile:
		bump(proof.ReasonStoreRecreated)
		a.wiped = true
		a.logf("store: new store but epoch %d in %s: the data partition was wiped; starting epoch %d", fileEpoch, a.cfg.KeyDir, a.epoch)
	case !headOK:
		a.epoch = max(fileEpoch, 1)
		a.genesisReason = proof.ReasonFirstStart
		if a.epoch > 1 {
			a.genesisReason = proof.ReasonStoreRecreated
		}
	case head.DeviceID != a.id.DeviceID:
		if fileEpoch > head.Epoch {
			a.epoch = fileEpoch
		} else {
			bump(proof.ReasonKeyRotated)
		}
		a.genesisReason = proof.ReasonKeyRotated
	case fileEpoch > head.Epoch:
		a.epoch, a.genesisReason = fileEpoch, proof.ReasonStoreRecreated
	case a.brokenEpoch(head.Epoch):
		// A refusal broke this chain and the daemon stopped before moving on.
		bump(proof.ReasonStoreRecreated)
	default:
		a.epoch = head.Epoch
	}
	a.needGenesis = !headOK || head.Epoch != a.epoch || head.DeviceID != a.id.DeviceID
	if !haveFile || damaged || fileEpoch != a.epoch {
		if err := identity.WriteEpoch(a.cfg.KeyDir, a.epoch); err != nil {
			return fmt.Errorf("key_dir %s: write epoch: %w", a.cfg.KeyDir, err)
		}
	}
	return nil
}

// rebuiltEpoch is the epoch to continue in when key_dir/epoch is damaged: the one after
// the store's head; without a head (the store is new too), the hours since 2020, which
// no earlier epoch of the key can have reached (epochs grow by one per rare event).
func rebuiltEpoch(head store.Head, headOK bool, now time.Time) uint32 {
	if headOK {
		return head.Epoch + 1
	}
	h := now.Sub(time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)) / time.Hour
	return uint32(max(h, 2))
}

// brokenEpoch reports whether a record of epoch sits in dead-letter for a reason after
// which the server can take no later record of the epoch.
func (a *Agent) brokenEpoch(epoch uint32) bool {
	dead, err := a.st.DeadLetters(1 << 20)
	if err != nil {
		return false
	}
	for _, d := range dead {
		if r, err := proof.Decode(d.Record); err == nil && r.Epoch == epoch && chainBreaking[d.Reason] {
			return true
		}
	}
	return false
}

// restore reads consent, the trusted-time anchor and the saved tally.
func (a *Agent) restore() error {
	if err := a.restoreConsent(); err != nil {
		return err
	}
	a.consentNow.Store(a.consent)
	sync, err := a.st.Sync()
	if err != nil {
		return err
	}
	now := a.clock.Boottime()
	if sync.ServerTime != 0 && sync.ServerBootID == a.bootID {
		a.time.Restore(timetrust.Anchor{ServerTime: sync.ServerTime, At: time.Duration(sync.ServerUptimeMS) * time.Millisecond})
	}
	a.wallRef = a.wallOffset(now)
	a.meter = newMeter(a.cfg.UTCOffsetMinutes, a.dateFloor(a.today(now)), now)
	a.meter.counting = a.consent
	t, ok, err := a.st.Tally()
	if err != nil {
		return err
	}
	switch {
	case ok && !a.consent:
		// A tally without consent can only be left over: drop it.
		return a.st.ClearTally()
	case ok:
		a.meter.restore(t, t.SavedBootID == a.bootID)
		a.logf("tally: restored %s: %d s, %d unlocks, %d screen_ons", t.Date, t.InteractiveSeconds, t.Unlocks, t.ScreenOns)
	}
	if a.tallyLost {
		a.meter.tally.Flags |= proof.FlagTallyLost
		a.tallyLost = false
	}
	if today := a.today(now); a.consent && !a.trustedNow() && a.meter.tally.Date > today.Next() {
		// Dated more than a day after the wall clock: either the wall clock is behind or
		// the tally was reached on a time a server made believed (docs/protocol.md,
		// "Trusted time"). Only a server answer can tell, and with nothing queued none
		// would come until that date: Run closes the tally at once.
		a.doubtful = true
	}
	return nil
}

// restoreConsent decides consent (docs/eligibility.md, consent): the store's, else the
// owner's last decision kept in key_dir (the store was lost), else consent_default. The
// key_dir copy follows the store's, and goes with a wiped data partition (a new owner).
// After a recovery it records where consent came from, with the epochs, for Status.
func (a *Agent) restoreConsent() error {
	granted, set, err := a.st.Consent()
	if err != nil {
		return err
	}
	kept, keptOK, kerr := identity.ReadConsent(a.cfg.KeyDir)
	if kerr != nil {
		a.logf("consent: %v (ignored)", kerr)
	}
	source := "kept"
	switch {
	case set:
		a.consent = granted
		if !keptOK || kept != granted {
			a.keepConsent(granted)
		}
	case a.wiped:
		a.consent, source = a.cfg.ConsentDefault, "consent_default"
		if err := identity.RemoveConsent(a.cfg.KeyDir); err != nil {
			a.logf("consent: %v", err)
		}
	case keptOK:
		a.consent, source = kept, "key_dir"
		a.logf("consent: from %s: granted %v", identity.ConsentFile, kept)
		if _, err := a.st.SetConsent(kept); err != nil {
			return err
		}
	default:
		a.consent, source = a.cfg.ConsentDefault, "consent_default"
	}
	if a.st.Recovered() != nil {
		o := store.Outcome{OldEpoch: a.oldEpoch, NewEpoch: a.epoch, Consent: source}
		if err := a.st.SetRecoveryOutcome(o); err != nil {
			a.logf("store: record the recovery's outcome: %v", err)
		}
		a.logf("store: recovered; epoch %d -> %d, consent %v (%s)", o.OldEpoch, o.NewEpoch, a.consent, source)
	}
	return nil
}

// keepConsent writes the owner's decision beside the key, so that it survives the loss
// of the store; a failure is logged (the store still holds it).
func (a *Agent) keepConsent(granted bool) {
	if err := identity.WriteConsent(a.cfg.KeyDir, granted); err != nil {
		a.logf("consent: keep a copy in key_dir %s: %v", a.cfg.KeyDir, err)
	}
}

// today is the reporting-zone date of trusted time at now (CLOCK_BOOTTIME).
func (a *Agent) today(now time.Duration) proof.Date {
	t, _ := a.trusted(now)
	return proof.DateOf(t, a.cfg.UTCOffsetMinutes)
}

// dateFloor returns d, or the day after the last minted date if d is not after it: a
// date is never minted twice nor before the last one (docs/eligibility.md).
func (a *Agent) dateFloor(d proof.Date) proof.Date {
	if a.headOK && a.head.LastDate != 0 && d <= a.head.LastDate {
		return a.head.LastDate.Next()
	}
	return d
}

// trusted returns trusted time at now (docs/protocol.md), and whether the server confirmed it.
func (a *Agent) trusted(now time.Duration) (time.Time, bool) {
	if anchor, ok := a.time.Anchor(); ok {
		return anchor.Time(now), true
	}
	return a.clock.Now().Add(now - a.clock.Boottime()), false
}

// trustedNow reports whether a server_time is believed in this boot.
func (a *Agent) trustedNow() bool {
	_, ok := a.time.Anchor()
	return ok
}

func (a *Agent) wallOffset(now time.Duration) time.Duration {
	return time.Duration(a.clock.Now().UnixNano()) - now
}

// DeviceID returns the device's id.
func (a *Agent) DeviceID() proof.DeviceID { return a.id.DeviceID }

// Identity returns the device identity.
func (a *Agent) Identity() *identity.Identity { return a.id }

// Store returns the agent's store (for the sync loop).
func (a *Agent) Store() *store.Store { return a.st }

// Close closes the store. Call it after Run has returned.
func (a *Agent) Close() error { return a.st.Close() }

// emit hands a source's event to the loop; it never drops one.
func (a *Agent) emit(ev sources.Event) {
	select {
	case a.events <- ev:
	case <-a.stopped:
	}
}

// Run runs the sources and the accounting loop until ctx is done, then saves the
// tally and returns.
func (a *Agent) Run(ctx context.Context) error {
	if !a.running.CompareAndSwap(false, true) {
		return errors.New("agent: Run called twice")
	}
	defer close(a.stopped)
	alarm, err := a.clock.NewWallAlarm()
	if err != nil {
		return fmt.Errorf("agent: wall alarm: %w", err)
	}
	defer alarm.Close()
	a.alarm = alarm
	srcCtx, stopSources := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		stopSources()
		a.drainWhile(&wg)
	}()
	srcs := a.sources() // sets a.bus and a.api before any goroutine reads them
	if sy, err := newSyncer(a); err != nil {
		a.logf("sync: disabled: %v", err)
	} else {
		a.sync, a.flush = sy, sy.flush
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := sy.Run(srcCtx); err != nil {
				a.logf("sync: %v", err)
			}
		}()
	}
	for _, s := range srcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Run(srcCtx, a.emit); err != nil {
				a.logf("source %s: %v", s.Name(), err)
				var fe *sources.FatalError
				if errors.As(err, &fe) {
					select {
					case a.fatal <- fe.Err:
					default:
					}
				}
			}
		}()
	}
	if a.consent {
		a.ensureGenesis()
	}
	now := a.clock.Boottime()
	if a.doubtful {
		a.logf("tally: %s is over a day past the wall clock's %s: closed now", a.meter.tally.Date, a.today(now))
		a.closeDay(now, a.dateFloor(a.today(now)))
		a.doubtful = false
	}
	a.step(now) // mint a date that ended while the daemon was down
	a.armMidnight(alarm, now)
	for {
		select {
		case ev := <-a.events:
			a.onEvent(ev)
		case _, ok := <-alarm.C():
			if !ok {
				return errors.New("agent: wall alarm closed")
			}
			now := a.clock.Boottime()
			a.rollover = true // a day closed now is closed by midnight itself
			a.step(now)
			a.rollover = false
			a.save("tick")
			a.armMidnight(alarm, now)
			a.trace("alarm")
		case <-a.saveTimerC():
			a.saveArmed = false
			a.step(a.clock.Boottime())
			a.save("timer")
			a.scheduleSave()
			if !a.saveArmed && a.opts.Idle != nil {
				a.opts.Idle() // the owner stopped and all is saved: nothing to do for a while
			}
			a.trace("save")
		case req := <-a.reqs:
			req()
		case err := <-a.fatal:
			a.step(a.clock.Boottime())
			a.save("stop")
			return err
		case <-ctx.Done():
			a.step(a.clock.Boottime())
			a.save("shutdown")
			if a.saveArmed {
				a.saveTimer.Stop()
				a.saveArmed = false
			}
			a.logf("stopped; tally of %s saved", a.meter.tally.Date)
			return nil
		}
	}
}

func (a *Agent) trace(what string) {
	if a.opts.Trace != nil {
		a.opts.Trace(what)
	}
}

// drainWhile waits for the sources to stop, taking their last events so that none
// blocks on a full channel.
func (a *Agent) drainWhile(wg *sync.WaitGroup) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for {
		select {
		case <-a.events:
		case <-done:
			return
		}
	}
}

// sources builds the configured sources: the D-Bus ones on one sources.Bus, and evdev.
func (a *Agent) sources() []Source {
	if a.opts.Sources != nil {
		return a.opts.Sources
	}
	// One connection carries amosd's own API and the D-Bus sources.
	a.bus = sources.NewBus(a.cfg.Bus, a.logf)
	a.api = dbusapi.NewServer(a, a.cfg.TrustedUIDs, a.cfg.StatusUIDs, a.logf)
	a.bus.Add(a.api)
	if a.cfg.HasSource(config.SourceAmosPower) {
		a.bus.Add(sources.NewPowerSource(a.emit, &a.spoofed, a.logf))
	}
	if a.cfg.HasSource(config.SourceLogind) {
		a.bus.Add(sources.NewLogindSource(a.emit, &a.spoofed, a.logf))
	}
	a.bus.Add(sources.NewNetworkWatch(a.logf, func() {
		if a.sync != nil {
			a.sync.networkUp()
		}
	}))
	out := []Source{busSource{a.bus}}
	if a.cfg.HasSource(config.SourceEvdev) {
		out = append(out, sources.NewEvdevSource(a.cfg.EvdevGlob, a.logf))
	}
	return out
}

// busSource runs the Bus as a Source.
type busSource struct{ b *sources.Bus }

func (s busSource) Name() string                                  { return "bus" }
func (s busSource) Run(ctx context.Context, _ sources.Emit) error { return s.b.Run(ctx) }

// onEvent accounts the time up to the event, then applies it.
func (a *Agent) onEvent(ev sources.Event) {
	now := a.clock.Boottime()
	a.step(now)
	a.meter.apply(ev, now)
	if ev.Kind != sources.EventInput && ev.Kind != sources.EventActive {
		a.logf("event: %s", ev) // state changes only: input is never logged
	}
	if a.opts.Observe != nil {
		a.opts.Observe(ev)
	}
	switch ev.Kind {
	case sources.EventScreenOff, sources.EventSuspend, sources.EventLocked:
		a.save(ev.Kind.String())
	}
	a.scheduleSave()
}

// step brings the accounting up to now: it notices clock jumps, mints the tally's
// date if trusted time has passed it, and accounts the time since the last step.
func (a *Agent) step(now time.Duration) {
	if off := a.wallOffset(now); (off-a.wallRef) > ClockJump || (a.wallRef-off) > ClockJump {
		a.logf("clock: wall clock moved %v against CLOCK_BOOTTIME", (off - a.wallRef).Round(time.Second))
		a.wallRef = off
		if a.consent {
			a.meter.tally.Flags |= proof.FlagClockJumped
			a.meter.dirty = true
		}
	}
	trusted, _ := a.trusted(now)
	if !a.meter.tally.Date.Valid() { // after a revocation: no date open
		a.meter.newDay(a.dateFloor(proof.DateOf(trusted, a.cfg.UTCOffsetMinutes)))
		a.meter.dirty = false
	}
	if today := proof.DateOf(trusted, a.cfg.UTCOffsetMinutes); today > a.meter.tally.Date {
		// Account the old date up to its midnight, then close it.
		end := a.meter.tally.Date.Next().Start(a.cfg.UTCOffsetMinutes)
		if b := now - trusted.Sub(end); b > a.meter.at {
			a.meter.advance(b, end)
		}
		if !a.closeDay(now, a.dateFloor(today)) {
			a.meter.at = now // the new day's time must not go into the old date
			return
		}
	}
	a.meter.advance(now, trusted)
}

// closeDay mints the tally's date if it had interaction and starts next, in one store
// transaction. If minting fails the date stays open, to be tried again at the next
// step, and it reports false.
func (a *Agent) closeDay(now time.Duration, next proof.Date) bool {
	if !a.consent {
		a.meter.newDay(next)
		a.meter.dirty = false
		return true
	}
	day := a.meter.tally.Date
	fresh := store.Tally{Date: next, UTCOffsetMinutes: int16(a.cfg.UTCOffsetMinutes), State: a.meter.state()}
	if !a.meter.used() {
		if err := a.st.SaveTally(fresh); err != nil {
			a.logf("tally: start %s: %v", next, err)
		}
		a.meter.newDay(next)
		a.meter.dirty = false
		return true
	}
	if !a.ensureGenesis() {
		return false
	}
	rec := a.newRecord(now, a.meter.tally.Flags, a.meter.activity())
	rec.Seq, rec.PrevHash = a.head.Seq+1, a.head.Hash
	if err := a.mint(rec, &fresh); err != nil {
		a.logf("mint %s: %v (kept; will retry)", day, err)
		return false
	}
	a.meter.newDay(next)
	a.meter.dirty = false
	return true
}

// newRecord fills the header of a record minted now.
func (a *Agent) newRecord(now time.Duration, flags proof.Flags, body proof.Body) *proof.Record {
	trusted, confirmed := a.trusted(now)
	if !confirmed {
		flags |= proof.FlagClockUnconfirmed
	}
	if a.debug {
		flags |= proof.FlagDebuggable
	}
	return &proof.Record{
		Flags:    flags,
		DeviceID: a.id.DeviceID,
		Epoch:    a.epoch,
		MintedAt: max(trusted.Unix(), 0),
		BootID:   a.bootID,
		UptimeMS: uint64(now / time.Millisecond),
		Body:     body,
	}
}

// mint signs rec and stores it with the next tally, atomically.
func (a *Agent) mint(rec *proof.Record, next *store.Tally) error {
	raw, err := rec.Sign(a.id.Signer)
	if err != nil {
		return err
	}
	res, err := a.st.Mint(raw, next)
	if err != nil {
		return err
	}
	a.head, a.headOK = res.Head, true
	if res.Evicted != (store.Evictions{}) {
		a.logf("store: evicted %d dead-letter and %d queued records to make room", res.Evicted.Dead, res.Evicted.Queued)
	}
	if a.opts.Minted != nil {
		a.opts.Minted(rec, res)
	}
	if a.sync != nil {
		if _, day := rec.Activity(); day && a.rollover {
			a.sync.pokeSpread()
		} else {
			a.sync.poke()
		}
	}
	if a.api != nil {
		var date uint32
		if act, ok := rec.Activity(); ok {
			date = uint32(act.Date)
		}
		a.api.Emit("RecordMinted", rec.Epoch, rec.Seq, date)
	}
	if act, ok := rec.Activity(); ok {
		a.logf("minted epoch %d seq %d: %s, %d s, %d unlocks, %d screen_ons", rec.Epoch, rec.Seq, act.Date, act.InteractiveSeconds, act.Unlocks, act.ScreenOns)
	} else {
		a.logf("minted the genesis of epoch %d (reason %d)", rec.Epoch, rec.Body.(*proof.Genesis).Reason)
	}
	return nil
}

// ensureGenesis mints the epoch's genesis if it is due; it reports whether the chain
// can take activity records.
func (a *Agent) ensureGenesis() bool {
	if !a.needGenesis {
		return true
	}
	now := a.clock.Boottime()
	rec := a.newRecord(now, 0, &proof.Genesis{PublicKey: a.id.PublicKey, Cert: a.id.Cert, Reason: a.genesisReason, Attestation: a.id.Chain})
	rec.Seq = 1
	t := a.storedTally(now)
	if err := a.mint(rec, t); err != nil {
		a.logf("mint genesis of epoch %d: %v (will retry)", a.epoch, err)
		return false
	}
	a.needGenesis = false
	return true
}

// storedTally is the tally as it is saved now, nil without consent.
func (a *Agent) storedTally(now time.Duration) *store.Tally {
	if !a.consent {
		return nil
	}
	t := a.meter.tally
	t.State = a.meter.state()
	trusted, _ := a.trusted(now)
	t.SavedAt, t.SavedBootID, t.SavedUptimeMS = trusted.Unix(), a.bootID, uint64(now/time.Millisecond)
	return &t
}

// save stores the tally if it changed.
func (a *Agent) save(why string) {
	if !a.consent || !a.meter.dirty {
		return
	}
	now := a.clock.Boottime()
	if err := a.st.SaveTally(*a.storedTally(now)); err != nil {
		a.logf("tally: save on %s: %v", why, err)
		return
	}
	a.meter.dirty = false
}

// scheduleSave arms the save timer while the tally has unsaved changes or the owner
// is interacting, so that a power loss loses at most SaveWithin. Otherwise nothing
// is armed: an idle phone is never woken.
func (a *Agent) scheduleSave() {
	if a.saveArmed || !a.consent || !a.meter.dirty && !a.meter.interacting() {
		return
	}
	if a.saveTimer == nil {
		a.saveTimer = a.clock.NewTimer(SaveWithin)
	} else {
		a.saveTimer.Reset(SaveWithin)
	}
	a.saveArmed = true
}

func (a *Agent) saveTimerC() <-chan time.Time {
	if !a.saveArmed {
		return nil
	}
	return a.saveTimer.C()
}

// armMidnight sets the alarm for the next reporting-zone midnight in trusted time,
// expressed on the wall clock. It is set again after every alarm, clock change and
// resume, so that suspend and clock changes never make it miss a date.
func (a *Agent) armMidnight(alarm clock.WallAlarm, now time.Duration) {
	trusted, _ := a.trusted(now)
	next := proof.DateOf(trusted, a.cfg.UTCOffsetMinutes).Next().Start(a.cfg.UTCOffsetMinutes)
	at := a.clock.Now().Add(next.Sub(trusted))
	if err := alarm.Set(at); err != nil {
		a.logf("clock: arm the midnight alarm for %v: %v", at, err)
	}
}

// detectDebuggable reports whether this is a build that allows debugging
// (ro.debuggable=1 in an Android property file).
func detectDebuggable() bool {
	for _, f := range []string{"/default.prop", "/system/etc/prop.default", "/system/build.prop", "/vendor/default.prop"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if strings.TrimSpace(line) == "ro.debuggable=1" {
				return true
			}
		}
	}
	return false
}
