package collector

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"amos.example/amosd/collector/claim"
	"amos.example/amosd/collector/ledger"
	"amos.example/amosd/collector/sales"
	"amos.example/amosd/proof"
)

// monthOf returns the records of a device's genesis and one active record per date
// of the month, first..last.
func monthRecords(d *device, m Month, first, last int, secs uint32, unlocks uint16) [][]byte {
	recs := [][]byte{d.genesis()}
	for day := first; day <= last; day++ {
		recs = append(recs, d.day(proof.NewDate(m.Year, m.Month, day), secs+uint32(day), unlocks))
	}
	return recs
}

// TestMintPlausibility: records no daemon mints are linked and never paid.
func TestMintPlausibility(t *testing.T) {
	konka := newMaker(t, "konka")
	now := at(2026, time.November, 5, 12)
	c := newCollector(t, ledger.NewMem(), &fixedClock{now}, registry(konka))
	mint := func(d *device, date proof.Date, minted int64, flags proof.Flags) []byte {
		r := &proof.Record{Flags: flags, DeviceID: d.id(), Epoch: d.epoch, Seq: d.seq + 1, PrevHash: d.prev, MintedAt: minted, UptimeMS: 1,
			Body: &proof.ActivityDay{Date: date, UTCOffsetMinutes: cst, InteractiveSeconds: 600, Unlocks: 3, ScreenOns: 4, ActiveHours: proof.AllHours}}
		return d.sign(r)
	}
	d := newDevice(t, "plausible", func(k proof.Signer) *proof.Certificate {
		return konka.certify(t, k, "p", at(2026, time.September, 1, 0))
	})
	end := func(day int) int64 { return oct(day).Next().Start(cst).Unix() }
	for _, tc := range []struct {
		name   string
		rec    func() []byte
		result string
	}{
		{"genesis", d.genesis, "accepted"},
		{"minted at 0", func() []byte { return mint(d, oct(1), 0, 0) }, "rejected implausible_mint"},
		{"minted in 2100", func() []byte { return mint(d, oct(2), time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC).Unix(), 0) }, "rejected implausible_mint"},
		{"minted a second before its date ended", func() []byte { return mint(d, oct(3), end(3)-1, 0) }, "rejected implausible_mint"},
		{"minted as its date ended", func() []byte { return mint(d, oct(4), end(4), 0) }, "accepted"},
		{"minted before the end, clock_jumped", func() []byte { return mint(d, oct(5), end(5)-3600, proof.FlagClockJumped) }, "accepted"},
		{"minted an hour ahead of the server", func() []byte { return mint(d, oct(6), now.Unix()+3600, 0) }, "accepted"},
		{"minted an hour and a second ahead", func() []byte { return mint(d, oct(7), now.Unix()+3601, 0) }, "rejected implausible_mint"},
		{"unconfirmed clock, 23 h ahead", func() []byte { return mint(d, oct(8), now.Unix()+23*3600, proof.FlagClockUnconfirmed) }, "accepted"},
		{"unconfirmed clock, 25 h ahead", func() []byte { return mint(d, oct(9), now.Unix()+25*3600, proof.FlagClockUnconfirmed) }, "rejected implausible_mint"},
		{"next record still links", func() []byte { return mint(d, oct(10), end(10)+5, 0) }, "accepted"},
	} {
		if got := verdicts(ingest(t, c, tc.rec()))[0]; got != tc.result {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.result)
		}
	}

	// A certificate issued in the future is bad_cert and credits nothing; so does a
	// genesis minted in the future.
	future := newDevice(t, "future cert", func(k proof.Signer) *proof.Certificate { return konka.certify(t, k, "f", now.Add(2*time.Hour)) })
	soon := newDevice(t, "soon cert", func(k proof.Signer) *proof.Certificate { return konka.certify(t, k, "s", now.Add(time.Hour)) })
	checkVerdicts(t, ingest(t, c, future.genesis(), soon.genesis()), "rejected bad_cert", "accepted")
	late := newDevice(t, "late genesis", func(k proof.Signer) *proof.Certificate { return konka.certify(t, k, "l", now) })
	r := &proof.Record{DeviceID: late.id(), Epoch: 1, Seq: 1, MintedAt: now.Add(48 * time.Hour).Unix(), UptimeMS: 1,
		Body: &proof.Genesis{PublicKey: late.key.PublicKey(), Cert: late.cert, Reason: proof.ReasonFirstStart}}
	late.epoch = 1
	checkVerdicts(t, ingest(t, c, late.sign(r)), "rejected implausible_mint")
	for _, dv := range []*device{future, late} {
		if rep, err := c.Device(dv.id()); err != nil || rep.Attributed {
			t.Errorf("a device with a future certificate or genesis is attributed: %+v %v", rep, err)
		}
	}
	checkChains(t, c)
}

// TestSalesRegistry: only sold handsets are paid, to the maker the registry names.
func TestSalesRegistry(t *testing.T) {
	konka, tcl := newMaker(t, "konka"), newMaker(t, "tcl")
	clock := &fixedClock{at(2027, time.March, 2, 12)}
	c := newCollector(t, ledger.NewMem(), clock, registry(konka, tcl))
	feb, _ := ParseMonth("2027-02") // 28 days
	issued := at(2027, time.January, 2, 0)
	cert := func(m maker, s string, when time.Time) func(proof.Signer) *proof.Certificate {
		return func(k proof.Signer) *proof.Certificate { return m.certify(t, k, s, when) }
	}
	sold := newDevice(t, "sold", cert(konka, "sold", issued))
	phantom := newDevice(t, "phantom", cert(konka, "made-up", issued))
	// tcl certifies a key with konka's sold serial tag and the earliest issued_at there is.
	thief := newDevice(t, "thief", cert(tcl, "sold", time.Unix(1, 0)))
	later := newDevice(t, "sold in March", cert(konka, "march", issued))
	for _, d := range []*device{sold, phantom, thief, later} {
		ingest(t, c, monthRecords(d, feb, 1, 28, 600, 2)...)
	}
	csv := "serial_tag,maker_id,sold_at,channel\n" +
		fmt.Sprintf("%x,konka,2027-02-28,taobao\n", serial("sold")) +
		fmt.Sprintf("%x,konka,2027-03-01,china-mobile\n", serial("march"))
	rows, err := sales.Parse("sales.csv", []byte(csv), c.SalesZone())
	if err != nil {
		t.Fatal(err)
	}
	if res, err := c.ImportSales("sales.csv", rows); err != nil || res != (ImportResult{Added: 2}) {
		t.Fatalf("import: %+v %v", res, err)
	}
	// Again: idempotent.
	if res, err := c.ImportSales("sales.csv", rows); err != nil || res != (ImportResult{Unchanged: 2}) {
		t.Fatalf("second import: %+v %v", res, err)
	}
	// A file whose third line contradicts the registry: refused whole, line named.
	bad := "serial_tag,maker_id,sold_at,channel\n" +
		fmt.Sprintf("%x,konka,2027-01-01,taobao\n", serial("new one")) +
		fmt.Sprintf("%x,tcl,2027-02-28,taobao\n", serial("sold"))
	rows, err = sales.Parse("bad.csv", []byte(bad), c.SalesZone())
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.ImportSales("bad.csv", rows)
	var re *sales.RowError
	if !errors.As(err, &re) || re.Line != 3 || !errors.Is(err, sales.ErrBadRow) || !strings.Contains(err.Error(), "never changed") {
		t.Errorf("conflicting import: %v", err)
	}
	unknown, _ := sales.Parse("ghost.csv", []byte("serial_tag,maker_id,sold_at,channel\n"+fmt.Sprintf("%x,ghost,2027-01-01,taobao\n", serial("g"))), c.SalesZone())
	if _, err := c.ImportSales("ghost.csv", unknown); !errors.As(err, &re) || re.Line != 2 || re.Field != "maker_id" {
		t.Errorf("unknown maker: %v", err)
	}
	c.ledger.View(func(tx ledger.Tx) error {
		if s, _ := tx.Sale(serial("new one")); s != nil {
			t.Error("a refused import applied its first row")
		}
		return nil
	})

	cl, err := c.Claims(feb)
	if err != nil {
		t.Fatal(err)
	}
	want := map[proof.DeviceID]string{sold.id(): "paid", phantom.id(): "unregistered serial_tag_not_registered",
		thief.id(): "refused serial_tag_of_another_maker", later.id(): "refused sold_after_month"}
	for id, w := range want {
		d := cl.Find(id)
		if got := strings.TrimSpace(string(d.Outcome) + " " + strings.Join(d.Reasons, ",")); got != w {
			t.Errorf("device %s: %s, want %s", id, got, w)
		}
	}
	if got := rowFigures(cl); !slices.Equal(got, []string{"konka 1/0/1/1/0", "tcl 0/0/1/0/0"}) {
		t.Errorf("rows %v", got)
	}
	// Each maker sees its own devices only.
	if v := cl.ForMaker("tcl"); len(v.Devices) != 1 || v.Devices[0].DeviceID != thief.id().String() {
		t.Errorf("tcl sees %+v", v.Devices)
	}
}

// TestClosedMonths: a month closes at its moment; its claim is computed once and
// never moves; records that arrive later are late. Months of 28, 29, 30 and 31 days
// and the turn of the year.
func TestClosedMonths(t *testing.T) {
	for _, tc := range []struct {
		month  string
		closes time.Time // 10 days after the end, 00:00 UTC+8
	}{
		{"2027-02", at(2027, time.March, 11, 0)},
		{"2028-02", at(2028, time.March, 11, 0)},
		{"2026-11", at(2026, time.December, 11, 0)},
		{"2026-12", at(2027, time.January, 11, 0)},
	} {
		t.Run(tc.month, func(t *testing.T) {
			m, _ := ParseMonth(tc.month)
			if got := claim.DefaultSchedule().ClosesAt(m); !got.Equal(tc.closes) {
				t.Fatalf("closes at %s, want %s", got, tc.closes)
			}
			konka := newMaker(t, "konka")
			clock := &fixedClock{tc.closes.Add(-time.Second)}
			c := newCollector(t, ledger.NewMem(), clock, registry(konka))
			issued := time.Date(m.Year, m.Month-2, 1, 0, 0, 0, 0, time.UTC)
			a := newDevice(t, "a", func(k proof.Signer) *proof.Certificate { return konka.certify(t, k, "a", issued) })
			b := newDevice(t, "b", func(k proof.Signer) *proof.Certificate { return konka.certify(t, k, "b", issued) })
			registerSales(t, c, "konka", "a", "b")
			last := m.Last().Day()
			ingest(t, c, monthRecords(a, m, 1, last, 600, 2)...)
			recsB := monthRecords(b, m, last-11, last, 900, 4)
			ingest(t, c, recsB[:3]...) // b has 2 days before the close

			before, err := c.Claims(m)
			if err != nil || before.Status != claim.StatusProvisional || before.ClosedAt != 0 || before.ClosesAt != tc.closes.Unix() {
				t.Fatalf("a second before: %+v %v", before, err)
			}
			clock.t = tc.closes
			closed, err := c.Claims(m)
			if err != nil || closed.Status != claim.StatusClosed || closed.ClosedAt != tc.closes.Unix() || !slices.Equal(rowFigures(closed), []string{"konka 1/0/0/0/0"}) {
				t.Fatalf("at the moment: %+v %v", closed, err)
			}
			// b's other 10 days arrive after the close: linked, late, never paid.
			clock.t = tc.closes.Add(time.Hour)
			checkVerdicts(t, ingest(t, c, recsB[3:]...), repeat("rejected late", 10)...)
			checkChains(t, c)
			again, err := c.Claims(m)
			if err != nil || again.ComputedAt != closed.ComputedAt || !slices.Equal(rowFigures(again), []string{"konka 1/0/0/0/10"}) {
				t.Errorf("after late records: %v %v", rowFigures(again), err)
			}
			// Decisions are refused once closed.
			if _, err := c.Decide(m, a.id(), true, "li", "x"); !errors.Is(err, ErrMonthClosed) {
				t.Errorf("decision after the close: %v", err)
			}
			// A sale registered after the close does not reopen it (nor would a late
			// computation see it).
			registerSales(t, c, "konka", "nobody")
			if err := c.CloseDue(); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestHeldDevices: a farm of identical phones is held, not paid; the payer releases
// or denies each held device with who and why, and a maker sees only its own.
func TestHeldDevices(t *testing.T) {
	konka, farmco := newMaker(t, "konka"), newMaker(t, "farmco")
	clock := &fixedClock{at(2027, time.January, 3, 12)}
	c := newCollector(t, ledger.NewMem(), clock, registry(konka, farmco))
	dec, _ := ParseMonth("2026-12") // and the turn of the year
	issued := at(2026, time.October, 1, 0)
	var farm []*device
	for i := range 4 {
		label := fmt.Sprint("farm ", i)
		d := newDevice(t, label, func(k proof.Signer) *proof.Certificate { return farmco.certify(t, k, label, issued) })
		recs := [][]byte{d.genesis()}
		for day := 1; day <= 31; day++ {
			r := &proof.Record{DeviceID: d.id(), Epoch: 1, Seq: d.seq + 1, PrevHash: d.prev, MintedAt: proof.NewDate(2026, time.December, day).Next().Start(cst).Unix() + int64(i),
				UptimeMS: 1, Body: &proof.ActivityDay{Date: proof.NewDate(2026, time.December, day), UTCOffsetMinutes: cst, InteractiveSeconds: 1800, Unlocks: 5, ScreenOns: 6, ActiveHours: 0xFF00}}
			recs = append(recs, d.sign(r))
		}
		ingest(t, c, recs...)
		registerSales(t, c, "farmco", label)
		farm = append(farm, d)
	}
	honest := newDevice(t, "honest", func(k proof.Signer) *proof.Certificate { return konka.certify(t, k, "honest", issued) })
	ingest(t, c, monthRecords(honest, dec, 1, 31, 700, 3)...)
	registerSales(t, c, "konka", "honest")

	cl, err := c.Claims(dec)
	if err != nil {
		t.Fatal(err)
	}
	if got := rowFigures(cl); !slices.Equal(got, []string{"farmco 0/4/0/0/0", "konka 1/0/0/0/0"}) {
		t.Fatalf("rows %v", got)
	}
	if r := cl.Rows[0]; r.HeldReasons["clone"] != 4 {
		t.Errorf("held reasons %v", r.HeldReasons)
	}
	if d := cl.Find(farm[0].id()); d.Outcome != claim.Held || len(d.Findings) == 0 || d.Findings[0].Signal != "clone" {
		t.Errorf("farm device %+v", d)
	}
	// The honest maker sees none of the farm's devices; the farm sees its held ones.
	if v := cl.ForMaker("konka"); len(v.Devices) != 1 || v.Devices[0].Outcome != claim.Paid {
		t.Errorf("konka sees %+v", v.Devices)
	}
	if v := cl.ForMaker("farmco"); len(v.Select(claim.Held)) != 4 {
		t.Errorf("farmco sees %+v", v.Devices)
	}

	// Decisions.
	if _, err := c.Decide(dec, honest.id(), true, "li", "fine"); !errors.Is(err, ErrNotHeld) {
		t.Errorf("a decision on a paid device: %v", err)
	}
	if _, err := c.Decide(dec, farm[0].id(), true, "", "why"); err == nil {
		t.Error("a decision without who")
	}
	clock.t = at(2027, time.January, 4, 9)
	if _, err := c.Decide(dec, farm[0].id(), true, "li wei", "the shop's demo phones, checked on site"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Decide(dec, farm[1].id(), false, "li wei", "identical counters on 31 days"); err != nil {
		t.Fatal(err)
	}
	// A decision can be revised; both are kept.
	clock.t = at(2027, time.January, 5, 9)
	if _, err := c.Decide(dec, farm[0].id(), false, "zhang min", "the site visit found a rack"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Decide(dec, farm[2].id(), true, "zhang min", "released for the test"); err != nil {
		t.Fatal(err)
	}
	cl, err = c.Claims(dec)
	if err != nil {
		t.Fatal(err)
	}
	if got := rowFigures(cl); !slices.Equal(got, []string{"farmco 1/1/2/0/0", "konka 1/0/0/0/0"}) {
		t.Errorf("after the decisions %v", got)
	}
	if d := cl.Find(farm[0].id()); d.Outcome != claim.Refused || d.Decision == nil || d.Decision.By != "zhang min" || d.Decision.At != at(2027, time.January, 5, 9).Unix() {
		t.Errorf("farm 0 %+v %+v", d, d.Decision)
	}
	if d := cl.Find(farm[2].id()); d.Outcome != claim.Paid || !slices.Equal(d.Reasons, []string{claim.ReasonReleased}) {
		t.Errorf("farm 2 %+v", d)
	}
	ds, err := c.Decisions(dec)
	if err != nil || len(ds) != 4 {
		t.Fatalf("audit trail %+v %v", ds, err)
	}
	var trail []string
	for _, d := range ds {
		trail = append(trail, fmt.Sprintf("%s %v %s", d.DeviceID.String()[:4], d.Release, d.By))
	}
	slices.Sort(trail)
	want := []string{farm[0].id().String()[:4] + " false zhang min", farm[0].id().String()[:4] + " true li wei",
		farm[1].id().String()[:4] + " false li wei", farm[2].id().String()[:4] + " true zhang min"}
	slices.Sort(want)
	if !slices.Equal(trail, want) {
		t.Errorf("trail %v, want %v", trail, want)
	}
	// After the close the decisions stand in the stored claim.
	clock.t = at(2027, time.January, 11, 0)
	closed, err := c.Claims(dec)
	if err != nil || closed.Status != claim.StatusClosed || !slices.Equal(rowFigures(closed), []string{"farmco 1/1/2/0/0", "konka 1/0/0/0/0"}) {
		t.Errorf("closed %v %v", rowFigures(closed), err)
	}
}
