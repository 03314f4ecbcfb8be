package collector

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"amos.example/amosd/collector/claim"
	"amos.example/amosd/collector/groupcommit"
	"amos.example/amosd/collector/ledger"
	"amos.example/amosd/collector/signals"
	"amos.example/amosd/proof"
)

// StaleMonths is how far back, in months before the server's date, a date may be.
const StaleMonths = 13

// Options configure a Collector.
type Options struct {
	// Makers is the registry certificates are verified against. With a nil registry
	// (offline verification without a configuration) certificates are checked for
	// format only: such a genesis is accepted and never credited.
	Makers Registry
	// Eligibility thresholds for claims; the zero value means DefaultEligibility.
	Eligibility Eligibility
	// Now is the server clock; time.Now if nil.
	Now func() time.Time
	// Workers verify signatures in parallel; runtime.NumCPU() if 0.
	Workers int
	// Schedule says when months close; the zero value means claim.DefaultSchedule.
	Schedule claim.Schedule
	// Signals are the fleet anomaly thresholds; the zero value means
	// signals.DefaultThresholds.
	Signals signals.Thresholds
	// Attestation verifies the attestation chains of geneses and says which makers
	// must be attested to be paid (docs/attestation.md); nil: chains are stored,
	// never verified, and no maker requires them.
	Attestation Attestor
	// UncertifiedDevicesPerHour is the budget of new devices whose genesis no
	// registered maker certified (docs/protocol.md 10.7): a token bucket of this many,
	// refilled at this many an hour on Now. 0 means DefaultUncertifiedDevicesPerHour;
	// a negative value admits none.
	UncertifiedDevicesPerHour int
}

// Collector verifies records into a ledger.Ledger and computes claims from it. Its
// methods are safe for concurrent use.
type Collector struct {
	ledger    ledger.Ledger
	makers    Registry
	elig      Eligibility
	now       func() time.Time
	workers   int
	schedule  claim.Schedule
	signals   signals.Thresholds
	attestor  Attestor
	committer *groupcommit.Group[*commitReq]
	admission admission

	// generation counts the ledger's committed writes: a provisional claim computed
	// at one generation is reused until the next.
	generation atomic.Uint64
	cacheMu    sync.Mutex
	computing  singleflight.Group // provisional claims being computed, by month
	cache      map[Month]cachedClaim
}

// New returns a Collector on l.
func New(l ledger.Ledger, o Options) (*Collector, error) {
	if l == nil {
		return nil, fmt.Errorf("collector: no ledger")
	}
	if o.Eligibility == (Eligibility{}) {
		o.Eligibility = DefaultEligibility()
	}
	if err := o.Eligibility.validate(); err != nil {
		return nil, fmt.Errorf("collector: %s: %s: %w", err.Key, err.Problem, ErrConfig)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Workers <= 0 {
		o.Workers = runtime.NumCPU()
	}
	if o.Schedule == (claim.Schedule{}) {
		o.Schedule = claim.DefaultSchedule()
	}
	if o.Signals == (signals.Thresholds{}) {
		o.Signals = signals.DefaultThresholds()
	}
	switch n := o.UncertifiedDevicesPerHour; {
	case n == 0:
		o.UncertifiedDevicesPerHour = DefaultUncertifiedDevicesPerHour
	case n < 0:
		o.UncertifiedDevicesPerHour = 0
	case n > MaxUncertifiedDevicesPerHour:
		return nil, fmt.Errorf("collector: limits.uncertified_devices_per_hour: %d, want 0..%d: %w", n, MaxUncertifiedDevicesPerHour, ErrConfig)
	}
	c := &Collector{ledger: l, makers: o.Makers, elig: o.Eligibility, now: o.Now, workers: o.Workers,
		schedule: o.Schedule, signals: o.Signals, attestor: o.Attestation, cache: map[Month]cachedClaim{}}
	c.admission.perHour = int64(o.UncertifiedDevicesPerHour)
	c.committer = groupcommit.New(MaxGroupRecords, func(r *commitReq) int { return len(r.ps) }, c.apply)
	return c, nil
}

// Ledger returns the collector's ledger.
func (c *Collector) Ledger() ledger.Ledger { return c.ledger }

// Registry returns the makers registry, nil if none.
func (c *Collector) Registry() Registry { return c.makers }

// IngestBatch decodes a wire batch (docs/protocol.md) and ingests its records. An error
// wrapping proof.ErrBatchFraming, proof.ErrBatchTooMany or proof.ErrBatchTooLarge
// means the batch itself is refused (HTTP 400 or 413) and nothing was looked at.
func (c *Collector) IngestBatch(body []byte) (*Receipt, error) {
	records, err := proof.DecodeBatch(body)
	if err != nil {
		return nil, err
	}
	return c.Ingest(records)
}

// Ingest verifies records, given in request order, and stores those it links in one
// durable ledger transaction, which batches ingested at the same time may share. It
// returns one Result per record in the same order; an error means the ledger failed
// and nothing of the batch was stored (a transient failure: HTTP 500).
func (c *Collector) Ingest(records [][]byte) (*Receipt, error) {
	now := c.now()
	ps := make([]prepared, len(records))

	// 1. Decode every record; a genesis carries its key, so verify it and its
	// certificate right away.
	c.parallel(len(ps), func(i int) {
		ps[i].decode(records[i], c.makers)
		ps[i].attest(c.attestor, now)
	})

	// 2. The keys of the other records: from a genesis of the batch, else the ledger.
	keys := map[proof.DeviceID]proof.PublicKey{}
	for i := range ps {
		if p := &ps[i]; p.rec != nil && p.genesis != nil {
			keys[p.id] = p.genesis.PublicKey
		}
	}
	missing := map[proof.DeviceID]bool{}
	for i := range ps {
		if p := &ps[i]; p.rec != nil && p.genesis == nil {
			if _, ok := keys[p.id]; !ok {
				missing[p.id] = true
			}
		}
	}
	if len(missing) > 0 {
		err := c.ledger.View(func(tx ledger.Tx) error {
			for id := range missing {
				d, err := tx.Device(id)
				if err != nil {
					return err
				}
				if d != nil {
					keys[id] = d.PublicKey
				}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("collector: looking up device keys: %w", err)
		}
	}

	// 3. Verify the activity records whose key is known.
	c.parallel(len(ps), func(i int) {
		p := &ps[i]
		if p.rec == nil || p.genesis != nil {
			return
		}
		if k, ok := keys[p.id]; ok {
			p.sigErr, p.sigChecked = proof.VerifyEncoded(p.raw, k), true
		}
	})

	// 4. The chain decisions, in request order, in one durable transaction, shared
	// with the batches that wait for the ledger at the same time (group commit).
	req := &commitReq{ps: ps, now: now, results: make([]Result, len(ps))}
	if err := c.committer.Do(req); err != nil {
		return nil, fmt.Errorf("collector: ingest: %w", err)
	}
	return &Receipt{ServerTime: now.Unix(), Results: req.results}, nil
}

// MaxGroupRecords bounds the records of the batches that one transaction commits.
const MaxGroupRecords = 4096

// commitReq is one batch waiting for the ledger.
type commitReq struct {
	ps      []prepared
	now     time.Time
	results []Result
}

// apply decides the records of the batches in order in one ledger transaction. The
// new-device budget is spent only for the devices a committed transaction admitted.
func (c *Collector) apply(group []*commitReq) error {
	defer c.generation.Add(1)
	var admitted int64
	err := c.ledger.Update(func(tx ledger.Tx) error {
		a := &applier{tx: tx, schedule: c.schedule, devices: map[proof.DeviceID]*ledger.Device{},
			heads: map[headID]*ledger.Head{}, dirtyDevices: map[proof.DeviceID]bool{}, dirtyHeads: map[headID]bool{},
			budget: &c.admission, deferred: map[proof.DeviceID]bool{}}
		if err := tx.Prefetch(chainsOf(group)); err != nil {
			return err
		}
		for _, req := range group {
			a.now = req.now
			clear(a.deferred) // a batch's verdicts do not depend on the batches it shares a transaction with
			for i := range req.ps {
				r, err := a.apply(&req.ps[i])
				if err != nil {
					return err
				}
				req.results[i] = r
			}
		}
		admitted = a.admitted
		return a.flush()
	})
	if err == nil {
		c.admission.spend(admitted)
	}
	return err
}

// chainsOf lists the device-epochs and months whose ledger entries deciding the
// group's records reads.
func chainsOf(group []*commitReq) []ledger.ChainMonth {
	var chains []ledger.ChainMonth
	for _, req := range group {
		for i := range req.ps {
			p := &req.ps[i]
			if p.rec == nil {
				continue
			}
			c := ledger.ChainMonth{ID: p.id, Epoch: p.epoch}
			if d := p.activity; d != nil && d.Date.Valid() {
				c.Month = claim.MonthOf(d.Date).Key()
			}
			chains = append(chains, c)
		}
	}
	return chains
}

// parallel runs fn(0..n-1) on the collector's workers.
func (c *Collector) parallel(n int, fn func(i int)) {
	w := min(c.workers, n)
	if w <= 1 {
		for i := range n {
			fn(i)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range w {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				fn(i)
			}
		})
	}
	wg.Wait()
}

// certState is the outcome of a genesis certificate's check.
type certState uint8

const (
	certNone         certState = iota // no certificate: an unattributed device
	certUnchecked                     // no registry to check it against
	certOK                            // signed by the maker's registered key
	certUnknownMaker                  // maker_id not in the registry
	certBad                           // not signed by the maker's registered key
)

// prepared is one record after the checks that need no ledger.
type prepared struct {
	raw      []byte
	id       proof.DeviceID // from the bytes, even when they do not decode
	epoch    uint32
	seq      uint64
	rec      *proof.Record // nil if the bytes do not decode
	genesis  *proof.Genesis
	activity *proof.ActivityDay
	err      error // decode error

	sigChecked bool
	sigErr     error

	cert     certState
	certErr  error
	makerKey proof.PublicKey

	attestation *ledger.Attestation // the verdict on the genesis's chain; nil if not verified
}

// attest verifies the attestation chain of a genesis whose certificate verified; now is
// the moment the collector received it (docs/attestation.md section 3).
func (p *prepared) attest(a Attestor, now time.Time) {
	if a == nil || p.genesis == nil || len(p.genesis.Attestation) == 0 || p.cert != certOK {
		return
	}
	p.attestation = a.Verify(p.genesis, now)
	p.attestation.Epoch = p.epoch
}

func (p *prepared) decode(raw []byte, makers Registry) {
	p.raw = raw
	if len(raw) >= 51 { // the header up to seq, for the result of a malformed record
		copy(p.id[:], raw[7:39])
		p.epoch = binary.BigEndian.Uint32(raw[39:])
		p.seq = binary.BigEndian.Uint64(raw[43:])
	}
	rec, err := proof.Decode(raw)
	if err != nil {
		p.err = err
		return
	}
	p.rec = rec
	p.activity, _ = rec.Activity()
	g, ok := rec.Genesis()
	if !ok {
		return
	}
	p.genesis = g
	p.sigErr, p.sigChecked = proof.VerifyEncoded(raw, g.PublicKey), true
	if p.sigErr != nil || g.Cert == nil {
		return
	}
	if makers == nil {
		p.cert = certUnchecked
		return
	}
	key, known := makers[g.Cert.MakerID]
	switch {
	case !known:
		p.cert = certUnknownMaker
	default:
		p.makerKey = key
		if p.certErr = g.Cert.Verify(key); p.certErr != nil {
			p.cert = certBad
		} else {
			p.cert = certOK
		}
	}
}

type headID struct {
	id    proof.DeviceID
	epoch uint32
}

// applier makes the chain decisions of one batch inside its write transaction. It
// caches devices and heads and writes the changed ones once, at flush.
type applier struct {
	tx           ledger.Tx
	now          time.Time
	schedule     claim.Schedule
	devices      map[proof.DeviceID]*ledger.Device // nil value: known absent
	heads        map[headID]*ledger.Head
	dirtyDevices map[proof.DeviceID]bool
	dirtyHeads   map[headID]bool
	budget       *admission              // of new uncertified devices
	admitted     int64                   // the new uncertified devices this transaction linked
	deferred     map[proof.DeviceID]bool // new devices whose genesis the budget deferred, in the batch
}

func (a *applier) device(id proof.DeviceID) (*ledger.Device, error) {
	if d, ok := a.devices[id]; ok {
		return d, nil
	}
	d, err := a.tx.Device(id)
	if err != nil {
		return nil, err
	}
	a.devices[id] = d
	return d, nil
}

func (a *applier) head(id proof.DeviceID, epoch uint32) (*ledger.Head, error) {
	k := headID{id, epoch}
	if h, ok := a.heads[k]; ok {
		return h, nil
	}
	h, err := a.tx.Head(id, epoch)
	if err != nil {
		return nil, err
	}
	a.heads[k] = h
	return h, nil
}

func (a *applier) flush() error {
	ids := make([]proof.DeviceID, 0, len(a.dirtyDevices))
	for id := range a.dirtyDevices {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(x, y proof.DeviceID) int { return bytes.Compare(x[:], y[:]) })
	for _, id := range ids {
		if err := a.tx.PutDevice(a.devices[id]); err != nil {
			return err
		}
	}
	hs := make([]headID, 0, len(a.dirtyHeads))
	for k := range a.dirtyHeads {
		hs = append(hs, k)
	}
	slices.SortFunc(hs, func(x, y headID) int {
		if c := bytes.Compare(x.id[:], y.id[:]); c != 0 {
			return c
		}
		return int(int64(x.epoch) - int64(y.epoch))
	})
	for _, k := range hs {
		if err := a.tx.PutHead(a.heads[k]); err != nil {
			return err
		}
	}
	return nil
}

func (a *applier) apply(p *prepared) (Result, error) {
	res := Result{Epoch: p.epoch, Seq: p.seq, DeviceID: p.id}
	if p.err != nil {
		if errors.Is(p.err, proof.ErrBadCert) { // a genesis whose certificate is malformed or for another key
			return rejected(res, ReasonBadCert, p.err.Error()), nil
		}
		return rejected(res, ReasonBadFormat, p.err.Error()), nil
	}
	if p.genesis != nil {
		return a.applyGenesis(p, res)
	}
	return a.applyActivity(p, res)
}

func rejected(r Result, reason Reason, detail string) Result {
	r.Status, r.Reason, r.Detail = StatusRejected, reason, detail
	return r
}

func retry(r Result, detail string) Result {
	r.Status, r.Reason, r.Detail = StatusRetry, ReasonChainGap, detail
	return r
}

// admit reports whether the budget admits one more new device whose genesis no
// registered maker certified; if not, the device's records wait (retry).
func (a *applier) admit(id proof.DeviceID) bool {
	if a.deferred[id] || a.budget.left(a.now) <= a.admitted {
		a.deferred[id] = true
		return false
	}
	a.admitted++
	return true
}

// overBudget is the result of a record of a new device the budget has not admitted.
func (a *applier) overBudget(r Result) Result {
	r.Status, r.Reason = StatusRetry, ReasonUncertifiedLimit
	r.Detail = fmt.Sprintf("the collector admits %d new devices an hour whose genesis no registered maker certified, and that budget is spent: keep the records and send them again later",
		a.budget.perHour)
	return r
}

func (a *applier) applyGenesis(p *prepared, res Result) (Result, error) {
	if p.sigErr != nil {
		return rejected(res, ReasonBadSignature, p.sigErr.Error()), nil
	}
	head, err := a.head(p.id, p.epoch)
	if err != nil {
		return res, err
	}
	if head != nil {
		return a.againstStored(p, res)
	}
	dev, err := a.device(p.id)
	if err != nil {
		return res, err
	}
	if dev == nil && p.cert != certOK && p.cert != certUnchecked && !a.admit(p.id) {
		return a.overBudget(res), nil
	}
	v, detail, err := a.certVerdict(p, dev)
	if err != nil {
		return res, err
	}
	if v == ledger.VerdictAccepted {
		v, detail = a.mintVerdict(p, v, detail)
	}
	if dev == nil {
		dev = &ledger.Device{ID: p.id, PublicKey: p.genesis.PublicKey, FirstSeen: a.now.Unix()}
		a.devices[p.id] = dev
		a.dirtyDevices[p.id] = true
	}
	if v == ledger.VerdictAccepted && p.cert == certOK && dev.Cert == nil {
		cert, err := p.genesis.Cert.MarshalBinary()
		if err != nil {
			return res, fmt.Errorf("collector: re-encoding a decoded certificate: %w", err)
		}
		dev.Cert, dev.CertMakerKey, dev.CertEpoch = cert, p.makerKey, p.epoch
		a.dirtyDevices[p.id] = true
	}
	if v == ledger.VerdictAccepted && p.attestation != nil && dev.Attestation == nil && dev.Cert != nil {
		// The first verdict on the key's chain stays: a chain is verified once, when it
		// first arrives, and only with the certificate credited to the
		// device, whose maker_id and serial_tag its challenge must bind
		// (docs/attestation.md).
		if cert, err := p.genesis.Cert.MarshalBinary(); err == nil && bytes.Equal(cert, dev.Cert) {
			dev.Attestation = p.attestation
			a.dirtyDevices[p.id] = true
		}
	}
	if err := a.tx.PutRecord(p.id, p.epoch, 1, &ledger.Record{Verdict: v, Bytes: p.raw}); err != nil {
		return res, err
	}
	head = &ledger.Head{DeviceID: p.id, Epoch: p.epoch, Seq: 1, Hash: proof.HashRecord(p.raw), Genesis: v, Updated: a.now.Unix()}
	countFlags(&head.Counts, p.rec.Flags)
	k := headID{p.id, p.epoch}
	a.heads[k], a.dirtyHeads[k] = head, true
	res.Status, res.Reason = resultOf(v)
	res.Detail = detail
	return res, nil
}

// certVerdict decides a new genesis's verdict from its certificate; dev is the device
// if it is already known.
func (a *applier) certVerdict(p *prepared, dev *ledger.Device) (ledger.Verdict, string, error) {
	c := p.genesis.Cert
	switch p.cert {
	case certNone:
		return ledger.VerdictAccepted, "no certificate: the device is unattributed and never paid", nil
	case certUnchecked:
		return ledger.VerdictAccepted, fmt.Sprintf("certificate of maker %q not checked: no makers registry", c.MakerID), nil
	case certUnknownMaker:
		return ledger.VerdictUnknownMaker, fmt.Sprintf("maker %q is not in the registry", c.MakerID), nil
	case certBad:
		return ledger.VerdictBadCert, p.certErr.Error(), nil
	}
	if dev == nil || dev.Cert == nil {
		return ledger.VerdictAccepted, "", nil
	}
	first, err := dev.Certificate()
	if err != nil {
		return 0, "", err
	}
	if first.MakerID != c.MakerID || first.SerialTag != c.SerialTag {
		return ledger.VerdictBadCert, fmt.Sprintf("certifies the key for maker %q serial_tag %x, but it was first certified for maker %q serial_tag %x",
			c.MakerID, c.SerialTag, first.MakerID, first.SerialTag), nil
	}
	return ledger.VerdictAccepted, "", nil
}

func (a *applier) applyActivity(p *prepared, res Result) (Result, error) {
	if p.sigErr != nil {
		return rejected(res, ReasonBadSignature, p.sigErr.Error()), nil
	}
	dev, err := a.device(p.id)
	if err != nil {
		return res, err
	}
	if dev == nil && a.deferred[p.id] { // its genesis, earlier in the batch, waits for the budget
		return a.overBudget(res), nil
	}
	if dev == nil {
		return rejected(res, ReasonUnknownDevice, "no genesis of this device_id has been received"), nil
	}
	if !p.sigChecked { // the genesis was linked by a concurrent batch since step 2
		if err := proof.VerifyEncoded(p.raw, dev.PublicKey); err != nil {
			return rejected(res, ReasonBadSignature, err.Error()), nil
		}
		p.sigChecked = true
	}
	head, err := a.head(p.id, p.epoch)
	if err != nil {
		return res, err
	}
	switch {
	case head == nil:
		return retry(res, fmt.Sprintf("the genesis of epoch %d has not been received", p.epoch)), nil
	case p.seq <= head.Seq:
		return a.againstStored(p, res)
	case p.seq > head.Seq+1:
		return retry(res, fmt.Sprintf("the chain's head is seq %d", head.Seq)), nil
	case p.rec.PrevHash != head.Hash:
		return a.fork(p, res, fmt.Sprintf("prev_hash %s is not the hash of the stored seq %d", p.rec.PrevHash, head.Seq))
	case p.activity.Date <= head.LastDate:
		return rejected(res, ReasonBadFormat, fmt.Sprintf("date %s is not after the chain's last date %s", p.activity.Date, head.LastDate)), nil
	}
	v, detail := a.dateVerdict(p.activity)
	if v == ledger.VerdictAccepted {
		v, detail = a.mintVerdict(p, v, detail)
	}
	if m := MonthOf(p.activity.Date); v == ledger.VerdictAccepted && a.schedule.Closed(m, a.now) {
		v, detail = ledger.VerdictLate, fmt.Sprintf("month %s closed at %s: the record joins its chain and is never paid", m, a.schedule.ClosesAt(m).UTC().Format(time.RFC3339))
		if err := a.tx.AddLate(m.Key(), p.id); err != nil {
			return res, err
		}
	}
	if err := a.tx.PutRecord(p.id, p.epoch, p.seq, &ledger.Record{Verdict: v, Bytes: p.raw}); err != nil {
		return res, err
	}
	if v == ledger.VerdictAccepted { // the month aggregate claims read
		if err := a.tx.AddDay(p.id, p.epoch, &ledger.Day{MintedAt: p.rec.MintedAt, Activity: *p.activity}); err != nil {
			return res, err
		}
	}
	head.Seq, head.Hash, head.LastDate, head.Updated = p.seq, proof.HashRecord(p.raw), p.activity.Date, a.now.Unix()
	countFlags(&head.Counts, p.rec.Flags)
	switch v {
	case ledger.VerdictAccepted:
		head.Counts.Accepted++
	case ledger.VerdictFutureDate:
		head.Counts.FutureDate++
	case ledger.VerdictStale:
		head.Counts.Stale++
	}
	a.dirtyHeads[headID{p.id, p.epoch}] = true
	res.Status, res.Reason = resultOf(v)
	res.Detail = detail
	return res, nil
}

// dateVerdict checks an activity date against the server's date in the record's zone.
func (a *applier) dateVerdict(act *proof.ActivityDay) (ledger.Verdict, string) {
	today := proof.DateOf(a.now, int(act.UTCOffsetMinutes))
	if act.Date > today {
		return ledger.VerdictFutureDate, fmt.Sprintf("date %s is after the server's date %s at UTC%+03d:%02d",
			act.Date, today, act.UTCOffsetMinutes/60, abs(act.UTCOffsetMinutes%60))
	}
	if oldest := StaleBefore(today); act.Date < oldest {
		return ledger.VerdictStale, fmt.Sprintf("date %s is more than %d months before the server's date %s", act.Date, StaleMonths, today)
	}
	return ledger.VerdictAccepted, ""
}

func abs(v int16) int16 {
	if v < 0 {
		return -v
	}
	return v
}

// StaleBefore returns the oldest date that is not stale on server date today: 13
// months earlier (a day that does not exist in that month rolls over, as time.Date
// normalizes it).
func StaleBefore(today proof.Date) proof.Date {
	t := time.Date(today.Year(), today.Month()-StaleMonths, today.Day(), 0, 0, 0, 0, time.UTC)
	return proof.NewDate(t.Year(), t.Month(), t.Day())
}

// againstStored decides a record whose position is already linked: the identical bytes
// are a duplicate (or get their stored rejection again), anything else is a fork.
func (a *applier) againstStored(p *prepared, res Result) (Result, error) {
	stored, err := a.tx.Record(p.id, p.epoch, p.seq)
	if err != nil {
		return res, err
	}
	if stored == nil {
		return res, fmt.Errorf("device %s epoch %d: the chain reaches past seq %d but it is not stored: %w", p.id, p.epoch, p.seq, ledger.ErrCorrupt)
	}
	if bytes.Equal(stored.Bytes, p.raw) {
		if stored.Verdict == ledger.VerdictAccepted {
			res.Status = StatusDuplicate
			return res, nil
		}
		return rejected(res, reasonOf(stored.Verdict), "identical to the stored record, which was rejected for this reason"), nil
	}
	return a.fork(p, res, fmt.Sprintf("differs from the stored record at epoch %d seq %d", p.epoch, p.seq))
}

// fork flags the device and keeps the record as evidence.
func (a *applier) fork(p *prepared, res Result, detail string) (Result, error) {
	dev, err := a.device(p.id)
	if err != nil {
		return res, err
	}
	if dev == nil {
		return res, fmt.Errorf("device %s has a chain but no device entry: %w", p.id, ledger.ErrCorrupt)
	}
	if dev.ForkEvidence < ledger.MaxForkEvidence {
		added, err := a.tx.AddForkEvidence(p.id, p.raw)
		if err != nil {
			return res, err
		}
		if added {
			dev.ForkEvidence++
			a.dirtyDevices[p.id] = true
		}
	}
	return rejected(res, ReasonChainFork, detail+": the device key signed two histories; the device is flagged"), nil
}

func countFlags(c *ledger.Counts, f proof.Flags) {
	if f&proof.FlagClockUnconfirmed != 0 {
		c.ClockUnconfirmed++
	}
	if f&proof.FlagClockJumped != 0 {
		c.ClockJumped++
	}
	if f&proof.FlagTallyLost != 0 {
		c.TallyLost++
	}
	if f&proof.FlagDebuggable != 0 {
		c.Debuggable++
	}
}
