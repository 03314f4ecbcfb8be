package claim

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"amos.example/amosd/collector/ledger"
	"amos.example/amosd/collector/signals"
	"amos.example/amosd/proof"
)

// entry is what Compute keeps of one device key of the month. It holds no pointer:
// the collector keeps millions of them in view of the garbage collector.
type entry struct {
	sum    signals.Summary // its id, maker, serial tag and active days
	seen   bool            // the ledger holds the device
	cert   bool            // a certificate is credited to it
	forked bool
	keyOK  bool // its certificate's maker is registered, with the key it verified against
	sale   saleState
	issued int64 // its certificate's issued_at
}

// saleState is what the sales registry says of an entry's serial tag.
type saleState uint8

const (
	saleNone  saleState = iota // no sale registered before the month closed
	saleOther                  // sold as another maker's
	saleLater                  // sold after the month
	saleOK
)

// worker is one goroutine's share of the month's days.
type worker struct {
	sheet    *signals.Sheet
	counters signals.Counters
	days     []signals.Day
	found    map[int32][]signals.Finding // the own findings of its devices
}

// makerTable names the maker_ids of the month's certificates by index.
type makerTable struct {
	mu    sync.Mutex
	names []string
	index map[string]int32
}

func (t *makerTable) of(id string) int32 {
	t.mu.Lock()
	defer t.mu.Unlock()
	i, ok := t.index[id]
	if !ok {
		i = int32(len(t.names))
		t.names = append(t.names, id)
		t.index[id] = i
	}
	return i
}

// Compute computes the claim of month m as of now, from tx. Sales registered after
// the month closed are not looked at, so that a claim computed late is the one the
// close would have computed. The month is read by GOMAXPROCS goroutines: p.Active is
// called from several at once.
func Compute(tx ledger.Tx, m Month, p Params, now time.Time) (*Claim, error) {
	last := m.Last()
	closesAt := p.Schedule.ClosesAt(m)
	decisions := map[proof.DeviceID]*ledger.Decision{}
	err := tx.Decisions(m.Key(), func(d *ledger.Decision) error {
		decisions[d.DeviceID] = d // the last one wins
		return nil
	})
	if err != nil {
		return nil, err
	}
	// The sales registry, on a database that can share the transaction's snapshot, in
	// the background from the start: it is read whole anyway when many devices are
	// attributed, and does not depend on the days or the devices.
	sales, err := registryAhead(tx)
	if err != nil {
		return nil, err
	}
	defer sales.stop()
	entries, counters, found, err := monthDays(tx, m, &p)
	if err != nil {
		return nil, err
	}
	// In the background while the devices and the sales are read: the clone signal,
	// which needs only the days, and the device_ids in hex.
	// And the rows of the claim's devices: a million of them is more than a hundred MB
	// to clear.
	var clones map[int32]signals.Finding
	var ids []string
	var devs []Device
	bg := make(chan struct{})
	go func() {
		defer close(bg)
		clones = signals.Clones(len(entries), func(i int) proof.DeviceID { return entries[i].sum.ID }, counters, p.Signals)
		ids = hexes(len(entries), func(i int) *[32]byte { return (*[32]byte)(&entries[i].sum.ID) })
		devs = make([]Device, len(entries))
		clear(devs) // its pages are touched here, not on the way
	}()
	defer func() { <-bg }()
	makers := &makerTable{index: map[string]int32{}}
	for _, id := range slices.Sorted(maps.Keys(p.Makers)) {
		makers.of(id)
	}
	atts, err := monthDevices(tx, entries, makers, &p)
	if err != nil {
		return nil, err
	}
	for i := range entries {
		if !entries[i].seen {
			return nil, fmt.Errorf("month %s: days of device %s, which the ledger does not hold: %w", m, entries[i].sum.ID, ledger.ErrCorrupt)
		}
	}
	dev := func(i int) *signals.Summary { return &entries[i].sum }
	// The sales: one lookup per serial tag for a few; for many, the whole registry, read
	// while the entries are sorted by serial tag, then merged with them.
	attributed := 0
	for i := range entries {
		if entries[i].cert {
			attributed++
		}
	}
	var order []int32
	var tags [][32]byte
	if attributed <= 4096 {
		sales.stop()
		order, tags = bySerial(entries)
		if err := lookUpSales(tx, entries, order, tags, makers.names, closesAt.Unix(), last); err != nil {
			return nil, err
		}
	} else {
		sorted := make(chan struct{})
		go func() {
			defer close(sorted)
			order, tags = bySerial(entries)
		}()
		reg, err := sales.wait()
		<-sorted
		if err != nil {
			return nil, err
		}
		mergeSales(entries, order, tags, reg, makers.names, closesAt.Unix(), last)
	}
	<-bg
	distances := signals.Cross(len(entries), dev, makers.names, order, clones, found, p.Signals)

	serials := hexes(len(order), func(k int) *[32]byte { return &tags[k] })
	for k, i := range order {
		devs[i].SerialTag = serials[k]
	}
	required := make([]bool, len(makers.names)) // per maker index
	for k, id := range makers.names {
		required[k] = p.AttestationRequired != nil && p.AttestationRequired(id)
	}
	payable := make([]bool, len(entries))
	var wg sync.WaitGroup
	parts := max(1, min(runtime.GOMAXPROCS(0), len(entries)/65536))
	for part := range parts {
		lo, hi := len(entries)*part/parts, len(entries)*(part+1)/parts
		wg.Go(func() {
			for i := lo; i < hi; i++ {
				payable[i] = outcome(&entries[i], &devs[i], ids[i], &p, makers.names, required, atts[int32(i)], found[int32(i)], decisions[entries[i].sum.ID])
			}
		})
	}
	wg.Wait()
	// One payment per serial tag: the earliest issued certificate, then the lowest
	// device_id, as order is sorted.
	paid := -1 // where in order the last entry paid is
	for k, i := range order {
		if !payable[i] {
			continue
		}
		if paid >= 0 && tags[paid] == tags[k] {
			devs[i].Outcome, devs[i].Reasons = Ineligible, []string{ReasonSerialPaidOnce}
		} else {
			devs[i].Outcome, paid = Paid, k
		}
	}

	c := &Claim{Month: m.String(), Status: StatusProvisional, ClosesAt: closesAt.Unix(), ComputedAt: now.Unix(), Rows: []Row{}}
	rows := map[string]*Row{}
	for _, id := range slices.Sorted(maps.Keys(p.Makers)) {
		rows[id] = &Row{MakerID: id, HeldReasons: map[string]int{}, RefusedReasons: map[string]int{}}
	}
	for _, d := range distances {
		if r := rows[d.MakerID]; r != nil {
			r.Distribution = &d
		}
	}
	var r *Row
	for i := range devs {
		o := &devs[i]
		if r == nil || r.MakerID != o.MakerID {
			if r = rows[o.MakerID]; r == nil {
				continue
			}
		}
		if o.Attestation == "attested" {
			r.Attested++
		}
		switch o.Outcome {
		case Paid:
			r.Paid++
		case Held:
			r.Held++
			for _, why := range o.Reasons {
				r.HeldReasons[why]++
			}
		case Refused:
			r.Refused++
			r.RefusedReasons[o.Reasons[0]]++
		case Unregistered:
			r.Unregistered++
		}
	}
	c.Devices = byMaker(devs)
	for _, id := range slices.Sorted(maps.Keys(rows)) {
		r := rows[id]
		r.EligibleDevices, r.AmountCNY = r.Paid, r.Paid*AmountPerDevice
		c.Rows = append(c.Rows, *r)
	}
	if err := CountLate(tx, m, c); err != nil {
		return nil, err
	}
	return c, nil
}

// outcome sets what the claim makes of entry e in o, but for the one payment per serial
// tag: it reports whether e is payable.
func outcome(e *entry, o *Device, id string, p *Params, makers []string, required []bool, att *ledger.Attestation,
	findings []signals.Finding, d *ledger.Decision) bool {
	o.DeviceID, o.ActiveDays = id, int(e.sum.ActiveDays)
	set := func(out Outcome, reasons ...string) { o.Outcome, o.Reasons = out, reasons }
	if !e.cert {
		set(Ineligible, ReasonNoCertificate)
		return false
	}
	o.MakerID = makers[e.sum.Maker]
	req := required[e.sum.Maker]
	var unattested []string
	if att != nil || req {
		unattested, o.Attestation = p.attestation(att)
	}
	o.Findings = findings
	if d != nil {
		o.Decision = &Decision{Decision: "deny", At: d.At, By: d.By, Why: d.Why}
		if d.Release {
			o.Decision.Decision = "release"
		}
	}
	switch {
	case e.forked:
		set(Refused, ReasonChainFork)
	case e.sale == saleOther:
		set(Refused, ReasonOtherMakers)
	case o.ActiveDays < p.MinActiveDays:
		set(Ineligible, ReasonTooFewDays)
	case !e.keyOK:
		set(Refused, ReasonMakerKey)
	case req && unattested != nil:
		set(Refused, unattested...)
	case e.sale == saleNone:
		set(Unregistered, ReasonNotRegistered)
	case e.sale == saleLater:
		set(Refused, ReasonSoldAfterMonth)
	case len(o.Findings) > 0 && o.Decision == nil:
		reasons := make([]string, len(o.Findings))
		for i, f := range o.Findings {
			reasons[i] = string(f.Signal)
		}
		set(Held, slices.Compact(reasons)...)
	case len(o.Findings) > 0 && o.Decision.Decision == "deny":
		set(Refused, ReasonDenied)
	default:
		if len(o.Findings) > 0 {
			o.Reasons = []string{ReasonReleased}
		}
		return true
	}
	return false
}

// monthDays reads the month's accepted days from its aggregates, in device_id order,
// GOMAXPROCS goroutines decoding them and computing each device's own signals. It
// returns one entry per device, the counters of their active dates, and their own
// findings by entry. On a database that can share the snapshot, the upper half of the
// device_ids is read on a second connection, at the same time as the lower half.
func monthDays(tx ledger.Tx, m Month, p *Params) ([]entry, []*signals.Counters, map[int32][]signals.Finding, error) {
	fork, end, err := tx.Fork()
	if err != nil {
		return nil, nil, nil, err
	}
	if fork == nil {
		d, err := dayRange(tx, m, p, nil, nil)
		if err != nil {
			return nil, nil, nil, err
		}
		return join(d), d.counters(), d.found(0), nil
	}
	defer end()
	half := []byte{0x80}
	var upper *days
	var upperErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		upper, upperErr = dayRange(fork, m, p, half, nil)
	}()
	lower, err := dayRange(tx, m, p, nil, half)
	<-done
	if err == nil {
		err = upperErr
	}
	if err != nil {
		return nil, nil, nil, err
	}
	// The upper half's devices were numbered from 0: they come after the lower's.
	base := int32(lower.n)
	counters := lower.counters()
	for _, c := range upper.counters() {
		c.Rebase(base)
		counters = append(counters, c)
	}
	found := lower.found(0)
	maps.Copy(found, upper.found(base))
	return join(lower, upper), counters, found, nil
}

// days is what dayRange read of a range of device_ids: its n entries, numbered from 0,
// in parts in order, and its workers' counters and findings.
type days struct {
	parts   [][]entry
	n       int
	workers []*worker
}

// join returns the entries of ds, one after another, in one slice.
func join(ds ...*days) []entry {
	n := 0
	for _, d := range ds {
		n += d.n
	}
	out := make([]entry, 0, n)
	for _, d := range ds {
		for _, p := range d.parts {
			out = append(out, p...)
		}
	}
	return out
}

func (d *days) counters() []*signals.Counters {
	out := make([]*signals.Counters, len(d.workers))
	for i, w := range d.workers {
		out[i] = &w.counters
	}
	return out
}

// found returns the findings of the range's devices by entry, the first numbered base.
func (d *days) found(base int32) map[int32][]signals.Finding {
	out := map[int32][]signals.Finding{}
	for _, w := range d.workers {
		for i, f := range w.found {
			out[base+i] = f
		}
	}
	return out
}

// dayRange reads the month's days of the device_ids in [from, to) (nil: no bound).
func dayRange(tx ledger.Tx, m Month, p *Params, from, to []byte) (*days, error) {
	n := runtime.GOMAXPROCS(0)
	workers := make(chan *worker, n)
	all := make([]*worker, n)
	for i := range all {
		all[i] = &worker{sheet: signals.NewSheet(p.Signals), found: map[int32][]signals.Finding{}}
		workers <- all[i]
	}
	type part struct {
		first int
		es    []entry
	}
	var mu sync.Mutex
	var parts []part
	err := tx.MonthDayRangeBatches(m.Key(), from, to, n, func(first int, runs []ledger.DayRun) error {
		w := <-workers
		defer func() { workers <- w }()
		es := make([]entry, 0, len(runs))
		for i := 0; i < len(runs); {
			j := i + 1
			for j < len(runs) && runs[j].ID == runs[i].ID {
				j++
			}
			days := w.days[:0]
			for _, r := range runs[i:j] {
				for k := range r.Days {
					d := &r.Days[k]
					days = append(days, signals.Day{Epoch: r.Epoch, MintedAt: d.MintedAt, Activity: d.Activity, Active: p.Active(&d.Activity)})
				}
			}
			w.days = days
			idx := int32(first + len(es))
			es = append(es, entry{sum: signals.Summary{ID: runs[i].ID, Maker: -1}})
			e := &es[len(es)-1]
			var f []signals.Finding
			e.sum.ActiveDays, e.sum.Unlocks, f = w.sheet.Own(&signals.Device{ID: e.sum.ID, Days: days}, nil)
			if len(f) > 0 {
				w.found[idx] = f
			}
			w.counters.Add(idx, days)
			i = j
		}
		mu.Lock()
		parts = append(parts, part{first, es})
		mu.Unlock()
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(parts, func(x, y part) int { return cmp.Compare(x.first, y.first) })
	d := &days{parts: make([][]entry, len(parts)), workers: all}
	for i, pt := range parts {
		if pt.first != d.n {
			return nil, fmt.Errorf("month %s: batches of days out of order", m)
		}
		d.parts[i] = pt.es
		d.n += len(pt.es)
	}
	return d, nil
}

// monthDevices reads the devices of the entries, in one pass over the ledger's devices
// that GOMAXPROCS goroutines decode, and returns their attestation verdicts by entry.
func monthDevices(tx ledger.Tx, entries []entry, makers *makerTable, p *Params) (map[int32]*ledger.Attestation, error) {
	atts := map[int32]*ledger.Attestation{}
	if len(entries) == 0 {
		return atts, nil
	}
	var mu sync.Mutex
	read := func(_ int, devs []ledger.Device) error {
		j := sort.Search(len(entries), func(i int) bool { return bytes.Compare(entries[i].sum.ID[:], devs[0].ID[:]) >= 0 })
		makerID, maker := "", int32(-1) // the last maker seen
		var found map[int32]*ledger.Attestation
		for k := range devs {
			d := &devs[k]
			for j < len(entries) && bytes.Compare(entries[j].sum.ID[:], d.ID[:]) < 0 {
				j++
			}
			if j == len(entries) {
				break
			}
			if entries[j].sum.ID != d.ID {
				continue
			}
			e := &entries[j]
			j++
			e.seen, e.forked = true, d.Forked()
			if d.Attestation != nil {
				if found == nil {
					found = map[int32]*ledger.Attestation{}
				}
				found[int32(j-1)] = d.Attestation
			}
			cert, err := d.SharedCertificate()
			if err != nil {
				return err
			}
			if cert == nil {
				continue
			}
			if maker < 0 || cert.MakerID != makerID {
				makerID, maker = cert.MakerID, makers.of(cert.MakerID)
			}
			e.cert, e.sum.Maker, e.sum.SerialTag, e.issued = true, maker, cert.SerialTag, cert.IssuedAt
			key, ok := p.Makers[makerID]
			e.keyOK = ok && key == d.CertMakerKey
		}
		if len(found) > 0 {
			mu.Lock()
			maps.Copy(atts, found)
			mu.Unlock()
		}
		return nil
	}
	// On a database that can share the snapshot, the upper half of the device_ids on
	// a second connection, at the same time as the lower half on the transaction's.
	fork, end, err := tx.Fork()
	if err != nil {
		return nil, err
	}
	if fork == nil {
		return atts, tx.DeviceBatches(runtime.GOMAXPROCS(0), read)
	}
	defer end()
	half := []byte{0x80}
	var upper error
	done := make(chan struct{})
	go func() {
		defer close(done)
		upper = fork.DeviceRangeBatches(half, nil, runtime.GOMAXPROCS(0), read)
	}()
	err = tx.DeviceRangeBatches(nil, half, runtime.GOMAXPROCS(0), read)
	<-done
	if err == nil {
		err = upper
	}
	return atts, err
}

// bySerial returns the indices of the attributed entries sorted by serial tag, then
// issued_at, then device_id; and their serial tags in that order.
func bySerial(entries []entry) ([]int32, [][32]byte) {
	var order []int32
	for i := range entries {
		if entries[i].cert {
			order = append(order, int32(i))
		}
	}
	signals.SortByTag(order, func(i int) *signals.Summary { return &entries[i].sum })
	tags := make([][32]byte, len(order))
	for k, i := range order {
		tags[k] = entries[i].sum.SerialTag
	}
	for lo := 0; lo < len(order); { // then by issued_at: the index is device_id order
		hi := lo + 1
		for hi < len(order) && tags[hi] == tags[lo] {
			hi++
		}
		if hi-lo > 1 {
			slices.SortStableFunc(order[lo:hi], func(x, y int32) int { return cmp.Compare(entries[x].issued, entries[y].issued) })
		}
		lo = hi
	}
	return order, tags
}

// sold is what a claim reads of a registered sale.
type sold struct {
	tag          [32]byte
	maker        string
	soldAt       proof.Date
	registeredAt int64
}

// saleOf says what a sale registered for e's serial tag makes of it.
func saleOf(e *entry, s *sold, makers []string, closesAt int64, last proof.Date) saleState {
	switch {
	case s.registeredAt >= closesAt:
		return saleNone
	case makers[e.sum.Maker] != s.maker:
		return saleOther
	case s.soldAt > last:
		return saleLater
	}
	return saleOK
}

// lookUpSales sets each attributed entry's sale from the registry, one lookup per
// serial tag: order lists them by serial tag, tags.
func lookUpSales(tx ledger.Tx, entries []entry, order []int32, tags [][32]byte, makers []string, closesAt int64, last proof.Date) error {
	for k := 0; k < len(order); {
		tag := tags[k]
		s, err := tx.Sale(tag)
		if err != nil {
			return err
		}
		for ; k < len(order) && tags[k] == tag; k++ {
			if s != nil {
				entries[order[k]].sale = saleOf(&entries[order[k]], &sold{s.SerialTag, s.MakerID, s.SoldAt, s.RegisteredAt}, makers, closesAt, last)
			}
		}
	}
	return nil
}

// salesAhead is the sales registry read in the background, or to be read when waited
// for.
type salesAhead struct {
	tx      ledger.Tx
	done    chan struct{} // closed when the background read ended; nil: none
	cancel  chan struct{} // closed to end the background read early
	stopped bool
	end     func() // ends the fork
	reg     []sold
	err     error
}

// errSalesStopped ends a background read of the registry no longer needed.
var errSalesStopped = errors.New("claim: sales registry not needed")

// registryAhead starts reading the sales registry in the background, on a fork of tx
// when tx has one; otherwise wait reads it in tx.
func registryAhead(tx ledger.Tx) (*salesAhead, error) {
	s := &salesAhead{tx: tx}
	fork, end, err := tx.Fork()
	if err != nil || fork == nil {
		return s, err
	}
	s.done, s.cancel, s.end = make(chan struct{}), make(chan struct{}), end
	go func() {
		defer close(s.done)
		s.reg, s.err = registry(fork, s.cancel)
	}()
	return s, nil
}

// wait returns the registry.
func (s *salesAhead) wait() ([]sold, error) {
	if s.done == nil {
		return registry(s.tx, nil)
	}
	<-s.done
	return s.reg, s.err
}

// stop ends the background read, if any, and the fork; wait must not be called after.
func (s *salesAhead) stop() {
	if s.done == nil || s.stopped {
		return
	}
	s.stopped = true
	close(s.cancel)
	<-s.done
	s.end()
}

// registry reads the whole sales registry, GOMAXPROCS goroutines decoding it, in
// serial_tag order; it stops early, with errSalesStopped, once cancel is closed.
func registry(tx ledger.Tx, cancel <-chan struct{}) ([]sold, error) {
	type part struct {
		first int
		ss    []sold
	}
	var mu sync.Mutex
	var parts []part
	err := tx.SaleBatches(runtime.GOMAXPROCS(0), func(first int, ss []ledger.Sale) error {
		select {
		case <-cancel:
			return errSalesStopped
		default:
		}
		out := make([]sold, len(ss))
		for i := range ss {
			out[i] = sold{ss[i].SerialTag, ss[i].MakerID, ss[i].SoldAt, ss[i].RegisteredAt}
		}
		mu.Lock()
		parts = append(parts, part{first, out})
		mu.Unlock()
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(parts, func(x, y part) int { return cmp.Compare(x.first, y.first) })
	n := 0
	for _, pt := range parts {
		n += len(pt.ss)
	}
	all := make([]sold, 0, n)
	for _, pt := range parts {
		all = append(all, pt.ss...)
	}
	return all, nil
}

// mergeSales sets each attributed entry's sale from the registry, both in serial_tag
// order: order lists the entries by serial tag, tags.
func mergeSales(entries []entry, order []int32, tags [][32]byte, reg []sold, makers []string, closesAt int64, last proof.Date) {
	k := 0
	for i := range reg {
		s := &reg[i]
		for k < len(tags) && bytes.Compare(tags[k][:], s.tag[:]) < 0 {
			k++
		}
		for ; k < len(tags) && tags[k] == s.tag; k++ {
			entries[order[k]].sale = saleOf(&entries[order[k]], s, makers, closesAt, last)
		}
	}
}

// hexes returns the lowercase hex of n byte strings of 32 bytes, of(i) being the
// i-th: substrings of a few long strings, built by GOMAXPROCS goroutines.
func hexes(n int, of func(i int) *[32]byte) []string {
	const size = 64
	out := make([]string, n)
	parts := max(1, min(runtime.GOMAXPROCS(0), n/65536))
	var wg sync.WaitGroup
	for p := range parts {
		lo, hi := n*p/parts, n*(p+1)/parts
		wg.Go(func() {
			var b strings.Builder
			b.Grow((hi - lo) * size)
			var buf [size]byte
			for i := lo; i < hi; i++ {
				for k, c := range of(i) {
					buf[2*k], buf[2*k+1] = hexDigits[c>>4], hexDigits[c&15]
				}
				b.Write(buf[:])
			}
			s := b.String()
			for i := lo; i < hi; i++ {
				out[i] = s[(i-lo)*size : (i-lo+1)*size]
			}
		})
	}
	wg.Wait()
	return out
}

const hexDigits = "0123456789abcdef"

// byMaker returns devs, which are in device_id order, sorted by maker_id then
// device_id.
func byMaker(devs []Device) []Device {
	if slices.IsSortedFunc(devs, func(x, y Device) int { return cmp.Compare(x.MakerID, y.MakerID) }) {
		return devs
	}
	slices.SortStableFunc(devs, func(x, y Device) int { return cmp.Compare(x.MakerID, y.MakerID) })
	return devs
}
