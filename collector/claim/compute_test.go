package claim

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"amos.example/amosd/collector/ledger"
	"amos.example/amosd/collector/ledger/pgledger"
	"amos.example/amosd/collector/signals"
	"amos.example/amosd/proof"
	"amos.example/amosd/rigs/pgtest"
)

// TestComputeAsBefore: Compute gives what the one-pass, one-goroutine computation it
// replaced gave (referenceCompute, kept here as it was), on fleets of several thousand
// devices (more than a batch of the ledger's scans, more serial tags than are looked up
// one by one) with every outcome: clones, serial tags shared by several keys, forks,
// unregistered and late sales, other makers' tags, removed makers, attestation, payer
// decisions, devices of several epochs, unattributed devices.
//
// On PostgreSQL, Compute reads the upper half of the device_ids on connections sharing
// the claim's snapshot: the halves must join as one month.
func TestComputeAsBefore(t *testing.T) {
	srv := pgtest.Start(t, pgtest.Options{})
	backends := []struct {
		name string
		open func(t *testing.T) ledger.Ledger
	}{
		{"mem", func(*testing.T) ledger.Ledger { return ledger.NewMem() }},
		{"postgres", func(t *testing.T) ledger.Ledger {
			l, err := pgledger.Open(srv.NewDatabase(t), pgledger.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
			return l
		}},
	}
	for _, b := range backends {
		for _, seed := range []uint64{1, 2, 3} {
			t.Run(fmt.Sprintf("%s/%d", b.name, seed), func(t *testing.T) {
				asBefore(t, b.open(t), seed)
			})
		}
	}
}

// asBefore fills l with a fleet of seed and compares Compute with referenceCompute.
func asBefore(t *testing.T, l ledger.Ledger, seed uint64) {
	p, m := fleet(t, l, rand.New(rand.NewPCG(seed, 7)), 6000)
	now := time.Date(2026, time.November, 5, 12, 0, 0, 0, time.UTC)
	err := l.View(func(tx ledger.Tx) error {
		want, err := referenceCompute(tx, m, p, now)
		if err != nil {
			return err
		}
		got, err := Compute(tx, m, p, now)
		if err != nil {
			return err
		}
		wj, _ := json.Marshal(want)
		gj, _ := json.Marshal(got)
		if !bytes.Equal(wj, gj) {
			t.Errorf("claims differ:\n got %.2000s\nwant %.2000s", gj, wj)
		}
		paid := 0
		for _, r := range got.Rows {
			paid += r.Paid
		}
		outcomes := map[Outcome]int{}
		reasons := map[string]int{}
		for _, d := range got.Devices {
			outcomes[d.Outcome]++
			for _, why := range d.Reasons {
				reasons[why]++
			}
		}
		t.Logf("reasons %v", reasons)
		t.Logf("%d devices, %d paid, outcomes %v", len(got.Devices), paid, outcomes)
		if len(outcomes) < 5 {
			t.Errorf("outcomes %v: the fleet does not exercise them all", outcomes)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// fleet fills l with n devices with days in October 2026, and returns the claim's rules
// and the month.
func fleet(t *testing.T, l ledger.Ledger, r *rand.Rand, n int) (Params, Month) {
	t.Helper()
	m := Month{2026, time.October}
	makerKey := func(id string) proof.PublicKey {
		var b [32]byte
		copy(b[:], "maker "+id)
		return proof.Ed25519Key(b)
	}
	p := Params{
		Makers:              map[string]proof.PublicKey{"konka": makerKey("konka"), "tcl": makerKey("tcl"), "oppo": makerKey("oppo")},
		Active:              func(a *proof.ActivityDay) bool { return a.InteractiveSeconds >= 300 && a.Unlocks >= 1 },
		MinActiveDays:       15,
		Signals:             signals.DefaultThresholds(),
		Schedule:            Schedule{AfterDays: 366, OffsetMinutes: 480},
		AttestationRequired: func(id string) bool { return id == "oppo" },
		Revoked: func(serials []string) (string, bool) {
			if slices.Contains(serials, "bad") {
				return "revoked key compromise", true
			}
			return "", false
		},
	}
	makers := []string{"konka", "tcl", "gone", "oppo"} // gone: not registered
	serialOf := func(i int) [32]byte {
		var s [32]byte
		binary.BigEndian.PutUint64(s[:], uint64(i))
		s[31] = 1
		return s
	}
	err := l.Update(func(tx ledger.Tx) error {
		for i := range n {
			var pub [32]byte
			binary.BigEndian.PutUint64(pub[:], r.Uint64())
			pub[31] = 0x5a
			k := proof.Ed25519Key(pub)
			d := &ledger.Device{ID: k.DeviceID(), PublicKey: k, FirstSeen: 1767225600}
			maker := makers[r.IntN(len(makers))]
			if r.IntN(2) == 0 { // mostly konka and tcl
				maker = makers[r.IntN(2)]
			}
			serial := i
			if r.IntN(10) == 0 { // a serial tag of several keys
				serial = r.IntN(max(i, 1))
			}
			if r.IntN(40) != 0 { // else unattributed
				c := &proof.Certificate{DevicePublicKey: k, SerialTag: serialOf(serial), MakerID: maker, Model: "Amos T1",
					IssuedAt: 1767225600 + int64(r.IntN(3))*86400}
				cb, err := c.MarshalBinary()
				if err != nil {
					return err
				}
				d.Cert, d.CertMakerKey, d.CertEpoch = cb, makerKey(maker), 1
				if r.IntN(50) == 0 {
					d.CertMakerKey = makerKey("old " + maker)
				}
			}
			if r.IntN(60) == 0 {
				d.ForkEvidence = 1
			}
			switch r.IntN(map[bool]int{true: 4, false: 12}[maker == "oppo"]) {
			case 0:
				d.Attestation = &ledger.Attestation{Accepted: true, VerifiedAt: 1767225600, Epoch: 1, Serials: []string{"ok"}}
			case 1:
				d.Attestation = &ledger.Attestation{Accepted: true, VerifiedAt: 1767225600, Epoch: 1, Serials: []string{"bad"}}
			case 2:
				d.Attestation = &ledger.Attestation{Accepted: false, Reason: "untrusted_root", VerifiedAt: 1767225600, Epoch: 1}
			}
			if err := tx.PutDevice(d); err != nil {
				return err
			}
			if d.Cert != nil && r.IntN(12) != 0 {
				s := &ledger.Sale{SerialTag: serialOf(serial), MakerID: maker, SoldAt: proof.NewDate(2026, time.January, 1), Channel: "taobao", RegisteredAt: 1767225600}
				switch r.IntN(20) {
				case 0:
					s.MakerID = makers[(slices.Index(makers, maker)+1)%len(makers)]
				case 1:
					s.SoldAt = proof.NewDate(2026, time.November, 2)
				case 2:
					s.RegisteredAt = time.Date(2027, time.December, 1, 0, 0, 0, 0, time.UTC).Unix()
				}
				if err := tx.PutSale(s); err != nil {
					return err
				}
			}
			clone := r.IntN(30) == 0
			late, step := int64(30*3600), 2
			if r.IntN(10) == 0 {
				step = 4
			}
			if r.IntN(20) == 0 {
				late = 3 * 86400
			}
			mass := r.IntN(100) == 0
			for epoch := uint32(1); epoch <= uint32(1+r.IntN(2)); epoch++ {
				first := 1 + r.IntN(5)
				for day := first; day <= 31; day += 1 + r.IntN(step) {
					date := proof.NewDate(2026, time.October, day)
					a := proof.ActivityDay{Date: date, UTCOffsetMinutes: 480, InteractiveSeconds: uint32(r.IntN(90000)),
						Unlocks: uint16(r.IntN(300)), ScreenOns: uint16(r.IntN(100)), ActiveHours: uint32(r.Uint64())}
					if clone {
						a.InteractiveSeconds, a.Unlocks, a.ScreenOns = 1000+uint32(i%7), 5, uint16(day)
					}
					if mass {
						a.InteractiveSeconds, a.Unlocks, a.ScreenOns = 4242, 42, 42
					}
					if r.IntN(30) == 0 {
						a.ActiveHours, a.InteractiveSeconds = proof.AllHours, 60000
					}
					minted := date.Next().Start(480).Unix() + r.Int64N(late)
					if err := tx.AddDay(d.ID, epoch, &ledger.Day{MintedAt: minted, Activity: a}); err != nil {
						return err
					}
				}
			}
			if r.IntN(25) == 0 {
				err := tx.AddDecision(&ledger.Decision{Month: m.Key(), DeviceID: d.ID, Release: r.IntN(2) == 0, At: 1767225600, By: "payer", Why: "checked"})
				if err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return p, m
}

// referenceCompute is Compute as it was before it read the month in batches, on
// several goroutines: the oracle of TestComputeAsBefore.
func referenceCompute(tx ledger.Tx, m Month, p Params, now time.Time) (*Claim, error) {
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
	type entry struct {
		dev    *ledger.Device
		cert   *proof.Certificate
		sig    signals.Device
		active int
		out    Device
		issued int64
	}
	// The month's accepted days, from its aggregates; then the devices they belong to
	// and the sales of their serial tags, each read in one pass. Both the aggregates and
	// the devices come in device_id order: they are merged, not looked up.
	var entries []*entry
	err = tx.MonthDays(m.Key(), func(id proof.DeviceID, epoch uint32, days []ledger.Day) error {
		var e *entry
		if n := len(entries); n > 0 && entries[n-1].sig.ID == id {
			e = entries[n-1]
		} else {
			e = &entry{sig: signals.Device{ID: id, Days: make([]signals.Day, 0, len(days))}}
			entries = append(entries, e)
		}
		for i := range days {
			d := &days[i]
			e.sig.Days = append(e.sig.Days, signals.Day{Epoch: epoch, MintedAt: d.MintedAt, Activity: d.Activity, Active: p.Active(&d.Activity)})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	serials := make(map[[32]byte]*ledger.Sale, len(entries))
	if len(entries) > 0 {
		next := 0
		err = tx.Devices(func(d *ledger.Device) error {
			if next == len(entries) || entries[next].sig.ID != d.ID {
				return nil
			}
			e := entries[next]
			next++
			cert, err := d.Certificate()
			if err != nil {
				return err
			}
			var active []proof.Date
			for _, day := range e.sig.Days {
				if day.Active {
					active = append(active, day.Activity.Date)
				}
			}
			slices.Sort(active)
			e.dev, e.cert, e.active = d, cert, len(slices.Compact(active))
			if cert != nil {
				e.sig.MakerID, e.sig.SerialTag, e.issued = cert.MakerID, cert.SerialTag, cert.IssuedAt
				serials[cert.SerialTag] = nil
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	for _, e := range entries {
		if e.dev == nil {
			return nil, fmt.Errorf("month %s: days of device %s, which the ledger does not hold: %w", m, e.sig.ID, ledger.ErrCorrupt)
		}
	}
	if err := referenceSalesOf(tx, serials); err != nil {
		return nil, err
	}
	sigDevs := make([]signals.Device, len(entries))
	for i, e := range entries {
		sigDevs[i] = e.sig
	}
	report := signals.Analyze(sigDevs, p.Signals)

	var payable []*entry
	for _, e := range entries {
		o := &e.out
		o.DeviceID, o.ActiveDays = e.dev.ID.String(), e.active
		set := func(out Outcome, reasons ...string) { o.Outcome, o.Reasons = out, reasons }
		if e.cert == nil {
			set(Ineligible, ReasonNoCertificate)
			continue
		}
		o.MakerID, o.SerialTag = e.cert.MakerID, hex.EncodeToString(e.cert.SerialTag[:])
		unattested, attText := p.attestation(e.dev.Attestation)
		if e.dev.Attestation != nil || (p.AttestationRequired != nil && p.AttestationRequired(e.cert.MakerID)) {
			o.Attestation = attText
		}
		required := p.AttestationRequired != nil && p.AttestationRequired(e.cert.MakerID)
		o.Findings = report.Devices[e.dev.ID]
		if d := decisions[e.dev.ID]; d != nil {
			o.Decision = &Decision{Decision: "deny", At: d.At, By: d.By, Why: d.Why}
			if d.Release {
				o.Decision.Decision = "release"
			}
		}
		sale := serials[e.cert.SerialTag]
		if sale != nil && sale.RegisteredAt >= closesAt.Unix() {
			sale = nil
		}
		switch key, ok := p.Makers[e.cert.MakerID]; {
		case e.dev.Forked():
			set(Refused, ReasonChainFork)
		case sale != nil && sale.MakerID != e.cert.MakerID:
			set(Refused, ReasonOtherMakers)
		case e.active < p.MinActiveDays:
			set(Ineligible, ReasonTooFewDays)
		case !ok || key != e.dev.CertMakerKey:
			set(Refused, ReasonMakerKey)
		case required && unattested != nil:
			set(Refused, unattested...)
		case sale == nil:
			set(Unregistered, ReasonNotRegistered)
		case sale.SoldAt > last:
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
			payable = append(payable, e)
		}
	}
	// One payment per serial tag: the earliest issued certificate, then the lowest device_id.
	slices.SortFunc(payable, func(x, y *entry) int {
		if c := bytes.Compare(x.cert.SerialTag[:], y.cert.SerialTag[:]); c != 0 { // nearly always: no other argument evaluated
			return c
		}
		return cmp.Or(cmp.Compare(x.issued, y.issued), bytes.Compare(x.dev.ID[:], y.dev.ID[:]))
	})
	for i, e := range payable {
		if i > 0 && payable[i-1].cert.SerialTag == e.cert.SerialTag {
			e.out.Outcome, e.out.Reasons = Ineligible, []string{ReasonSerialPaidOnce}
		} else {
			e.out.Outcome = Paid
		}
	}

	c := &Claim{Month: m.String(), Status: StatusProvisional, ClosesAt: closesAt.Unix(), ComputedAt: now.Unix(), Rows: []Row{}, Devices: make([]Device, len(entries))}
	rows := map[string]*Row{}
	for _, id := range slices.Sorted(maps.Keys(p.Makers)) {
		rows[id] = &Row{MakerID: id, HeldReasons: map[string]int{}, RefusedReasons: map[string]int{}}
	}
	for _, d := range report.Makers {
		if r := rows[d.MakerID]; r != nil {
			r.Distribution = &d
		}
	}
	for i, e := range entries {
		c.Devices[i] = e.out
		r := rows[e.out.MakerID]
		if r == nil {
			continue
		}
		if e.out.Attestation == "attested" {
			r.Attested++
		}
		switch e.out.Outcome {
		case Paid:
			r.Paid++
		case Held:
			r.Held++
			for _, why := range e.out.Reasons {
				r.HeldReasons[why]++
			}
		case Refused:
			r.Refused++
			r.RefusedReasons[e.out.Reasons[0]]++
		case Unregistered:
			r.Unregistered++
		}
	}
	slices.SortFunc(c.Devices, func(x, y Device) int {
		if x.MakerID != y.MakerID {
			return cmp.Compare(x.MakerID, y.MakerID)
		}
		return cmp.Compare(x.DeviceID, y.DeviceID)
	})
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

// salesOf fills serials with the registered sale of each serial tag (nil if none):
// one lookup each for a few, one scan of the registry for many.
func referenceSalesOf(tx ledger.Tx, serials map[[32]byte]*ledger.Sale) error {
	if len(serials) <= 4096 {
		for serial := range serials {
			s, err := tx.Sale(serial)
			if err != nil {
				return err
			}
			serials[serial] = s
		}
		return nil
	}
	return tx.Sales(func(s *ledger.Sale) error {
		if _, ok := serials[s.SerialTag]; ok {
			serials[s.SerialTag] = s
		}
		return nil
	})
}
