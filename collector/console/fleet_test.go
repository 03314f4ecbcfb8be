package console

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"amos.example/amosd/collector"
	"amos.example/amosd/collector/claim"
	"amos.example/amosd/collector/collectortest"
	"amos.example/amosd/collector/sales"
	"amos.example/amosd/proof"
	"amos.example/amosd/rigs/testenv"
	"amos.example/amosd/tools/fleetsim"
)

// fleetRig fills a collector with the fleet simulator's month scenario (200 phones of
// konka, tcl and zte in October 2026, seed 7, uploaded over TLS on the simulator's
// clock, which ends on November 1st, 02:00 UTC+8) and serves the console over it.
func fleetRig(t *testing.T) (*rig, *fleetsim.Server) {
	t.Helper()
	if len(testenv.Emulator()) > 0 {
		t.Skip("a host test: its TLS fleet is not worth emulating")
	}
	clock := fleetsim.NewClock(october.First().Start(480))
	var makers []fleetsim.Maker
	for _, id := range []string{"konka", "tcl", "zte"} {
		m, err := fleetsim.NewMaker(id, 1)
		if err != nil {
			t.Fatal(err)
		}
		makers = append(makers, m)
	}
	srv, err := fleetsim.StartServer(t.TempDir(), "", makers, clock, nil, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if _, err := fleetsim.RunMonth(ctx, fleetsim.MonthConfig{Devices: 200, Month: october, Seed: 7, Dir: t.TempDir(), Server: srv, Logf: t.Logf}); err != nil {
		t.Fatal(err)
	}
	scripted(t, srv, clock.Now())
	payer := sha256.Sum256([]byte(srv.PayerToken))
	o := Options{Collector: srv.Collector, PayerToken: &payer, Now: clock.Now, MakerTokens: map[string][32]byte{}}
	for _, m := range makers {
		o.MakerTokens[m.ID] = sha256.Sum256([]byte(m.Token))
	}
	h, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, coll: srv.Collector, srv: httptest.NewServer(h), logs: &strings.Builder{}}
	t.Cleanup(r.srv.Close)
	return r, srv
}

// scripted adds, beside the simulated fleet, what an honest fleet does not have: a
// farm of four tcl phones, registered as sold, with identical counters every day of
// October (held, clone),
// and a konka phone with a record minted in the future (implausible_mint) whose key a
// clone also used (chain_fork: its genesis, minted in September, and its October 1st).
func scripted(t *testing.T, srv *fleetsim.Server, now time.Time) {
	t.Helper()
	keys := map[string]*fleetsim.Maker{}
	for i := range srv.Makers {
		keys[srv.Makers[i].ID] = &srv.Makers[i]
	}
	issued := time.Unix(1780000000, 0) // before the geneses' minted_at
	device := func(maker, label string) *collectortest.Device {
		d := collectortest.NewDevice(t, "fleet "+label)
		d.Cert = collectortest.Certify(t, keys[maker].Key, maker, d.Key.PublicKey(), "fleet "+label, issued)
		return d
	}
	ingest := func(want string, recs ...[]byte) {
		t.Helper()
		rc, err := srv.Collector.Ingest(recs)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range rc.Results {
			got = append(got, strings.TrimSpace(string(r.Status)+" "+string(r.Reason)))
		}
		if strings.Join(got, ",") != want {
			t.Fatalf("verdicts %v, want %s", got, want)
		}
	}
	var sold []sales.Row
	for i := range 4 {
		label := fmt.Sprint("farm ", i)
		sold = append(sold, sales.Row{Line: i + 2, Sale: sales.Sale{SerialTag: sha256.Sum256([]byte("fleet " + label)), MakerID: "tcl",
			SoldAt: proof.NewDate(2026, time.September, 1), Channel: "taobao"}})
		d := device("tcl", label)
		recs := [][]byte{d.Genesis()}
		for day := 1; day <= 31; day++ {
			recs = append(recs, d.Day(proof.NewDate(2026, time.October, day), 1800, 5))
		}
		ingest(strings.TrimSuffix(strings.Repeat("accepted,", 32), ","), recs...)
	}
	if _, err := srv.Collector.ImportSales("fleet farm", sold); err != nil {
		t.Fatal(err)
	}
	d := device("konka", "odd")
	recs := [][]byte{d.Genesis()}
	for day := 1; day <= 12; day++ {
		recs = append(recs, d.Day(proof.NewDate(2026, time.October, day), uint32(600+day), 3))
	}
	future := &proof.Record{DeviceID: d.ID(), Epoch: d.Epoch, Seq: d.Seq + 1, PrevHash: d.Prev, MintedAt: now.Add(48 * time.Hour).Unix(), UptimeMS: 99000,
		Body: &proof.ActivityDay{Date: proof.NewDate(2026, time.October, 20), UTCOffsetMinutes: 480, InteractiveSeconds: 900, Unlocks: 3, ScreenOns: 4, ActiveHours: proof.AllHours}}
	raw, err := future.Sign(d.Key)
	if err != nil {
		t.Fatal(err)
	}
	ingest(strings.Repeat("accepted,", 13)+"rejected implausible_mint", append(recs, raw)...)
	clone := collectortest.NewDevice(t, "fleet odd")
	clone.Cert = collectortest.Certify(t, keys["konka"].Key, "konka", clone.Key.PublicKey(), "fleet odd", issued.Add(time.Hour))
	ingest("rejected chain_fork,rejected chain_fork", clone.Genesis(), clone.Day(proof.NewDate(2026, time.October, 1), 700, 3))
}

// wantCharts returns the charts' bars that a claim's devices make: the active device
// keys a day add up to their active days, and the histogram of active days.
func wantCharts(cl *collector.Claims) (activeDays int, hist []int) {
	hist = make([]int, october.Last().Day()+1)
	for _, d := range cl.Devices {
		activeDays += d.ActiveDays
		hist[d.ActiveDays]++
	}
	return activeDays, hist
}

var dataValue = regexp.MustCompile(`data-value="(\d+)"`)

// values returns the data-value of each bar of an SVG chart.
func values(svg string) []int {
	var out []int
	for _, m := range dataValue.FindAllStringSubmatch(svg, -1) {
		v, _ := strconv.Atoi(m[1])
		out = append(out, v)
	}
	return out
}

func sum(v []int) int {
	n := 0
	for _, x := range v {
		n += x
	}
	return n
}

// checkRiskTable compares the payer page's risk table with the claim's rows.
func checkRiskTable(t *testing.T, body string, cl *collector.Claims) {
	t.Helper()
	_, table, _ := strings.Cut(body, `<table id="risk">`)
	table, _, _ = strings.Cut(table, "</table>")
	for _, row := range cl.Rows {
		_, tr, ok := strings.Cut(table, `<tr data-risk-maker="`+row.MakerID+`">`)
		tr, _, _ = strings.Cut(tr, "</tr>")
		if !ok {
			t.Errorf("no risk row for %s", row.MakerID)
			continue
		}
		var want []string
		for _, s := range riskSignals {
			want = append(want, fmt.Sprintf(`data-signal="%s">%d<`, s, row.HeldReasons[s]))
		}
		if d := row.Distribution; d != nil {
			flagged := "no"
			if d.Flagged {
				flagged = "yes"
			}
			want = append(want, fmt.Sprintf(`data-dist="devices">%d<`, d.Devices), fmt.Sprintf(`data-dist="active_days">%.2f<`, d.ActiveDays),
				fmt.Sprintf(`data-dist="unlocks">%.2f<`, d.Unlocks), fmt.Sprintf(`data-dist="threshold">%.2f<`, d.Threshold),
				fmt.Sprintf(`data-dist="flagged"%s>%s<`, map[bool]string{true: ` class="warning"`}[d.Flagged], flagged))
		} else {
			want = append(want, `data-dist="devices">0<`)
		}
		for _, w := range want {
			if !strings.Contains(tr, w) {
				t.Errorf("%s's risk row lacks %s: %s", row.MakerID, w, tr)
			}
		}
	}
}

// TestFleet: the console's pages over a collector that the fleet simulator filled
// equal Collector.Claims (rows, risk table, held devices, both charts, rejected
// records), over HTTP and in Chromium when there is one.
func TestFleet(t *testing.T) {
	r, srv := fleetRig(t)
	cl, err := r.coll.Claims(october)
	if err != nil {
		t.Fatal(err)
	}
	activeDays, hist := wantCharts(cl)
	if len(cl.Rows) != 3 || len(cl.Devices) == 0 || cl.Status != claim.StatusProvisional || cl.Rows[1].HeldReasons["clone"] != 4 {
		t.Fatalf("the fleet's claim: %d rows, %d devices, %s: %+v", len(cl.Rows), len(cl.Devices), cl.Status, cl.Rows)
	}

	payer := r.client()
	payer.signInWith("payer", srv.PayerToken)
	checkRows(t, r, payer, "/console/payer?month=2026-10")
	_, body := payer.get("/console/payer?month=2026-10&lang=en")
	checkRiskTable(t, body, cl)
	if got := values(chartOf(body, "hist")); fmt.Sprint(got) != fmt.Sprint(hist) {
		t.Errorf("histogram %v, claim %v", got, hist)
	}
	if got := values(chartOf(body, "daily")); len(got) != 31 || sum(got) != activeDays {
		t.Errorf("daily chart %v: %d device-days, claim %d", got, sum(got), activeDays)
	}
	if n, want := strings.Count(body, `<form method="post" action="/console/held/`), len(cl.Select(claim.Held)); n != want {
		t.Errorf("%d review forms, %d held", n, want)
	}
	for _, m := range srv.Makers {
		own := cl.ForMaker(m.ID)
		row := own.Rows[0]
		c := r.client()
		c.signInWith(m.ID, m.Token)
		_, body := c.get("/console/claims?month=2026-10&lang=en")
		for _, want := range []string{fmt.Sprintf(`data-field="paid">%d<`, row.Paid), fmt.Sprintf(`data-field="held">%d<`, row.Held),
			fmt.Sprintf(`data-field="refused">%d<`, row.Refused), fmt.Sprintf(`data-field="unregistered">%d<`, row.Unregistered),
			fmt.Sprintf(`data-field="amount_cny">CNY %d<`, row.AmountCNY)} {
			if !strings.Contains(body, want) {
				t.Errorf("%s's page lacks %s", m.ID, want)
			}
		}
		activeDays, hist := wantCharts(own)
		if got := values(chartOf(body, "hist")); fmt.Sprint(got) != fmt.Sprint(hist) {
			t.Errorf("%s's histogram %v, claim %v", m.ID, got, hist)
		}
		if got := values(chartOf(body, "daily")); sum(got) != activeDays {
			t.Errorf("%s's daily chart: %d device-days, claim %d", m.ID, sum(got), activeDays)
		}
		// Every record of the simulated fleet is accepted: only the scripted ones of
		// konka are rejected.
		rejected, err := r.coll.RejectedRecords(october, m.ID)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"konka": "map[chain_fork:1 implausible_mint:1]", "tcl": "map[]", "zte": "map[]"}[m.ID]
		if fmt.Sprint(rejected) != want {
			t.Errorf("%s's rejected records: %v, want %s", m.ID, rejected, want)
		}
		for reason, n := range rejected {
			if s := fmt.Sprintf(`data-code="%s">%s</th><td class="num" data-value="%d">`, reason, reasons["en"][string(reason)], n); !strings.Contains(body, s) {
				t.Errorf("%s's page lacks %s", m.ID, s)
			}
		}
		if (len(rejected) == 0) != strings.Contains(body, `id="rejected-none"`) {
			t.Errorf("%s's page: rejected records %v, and the page says none: %v", m.ID, rejected, !strings.Contains(body, `id="rejected-none"`))
		}
	}

	if !browserWanted() {
		t.Log("no chromium on PATH: the browser half of the test is skipped")
		return
	}
	b := newBrowser(t)
	base := r.srv.URL
	b.signIn(base, srv.PayerToken)
	b.do("the fleet's payer page", chromedp.Navigate(base+"/console/payer?month=2026-10&lang=en"), chromedp.WaitVisible(chromedp.CSS("#risk")))
	checkBrowserRows(t, r, b, "")
	if got := bars(b, "hist"); fmt.Sprint(got) != fmt.Sprint(hist) {
		t.Errorf("browser: histogram %v, claim %v", got, hist)
	}
	if got := bars(b, "daily"); sum(got) != activeDays {
		t.Errorf("browser: daily chart %v, %d device-days, claim %d", got, sum(got), activeDays)
	}
	b.accessible("the fleet's payer page")
	b.screenshot("fleet-payer")
	b.do("sign out", chromedp.Click(chromedp.CSS("#signout")), chromedp.WaitVisible(chromedp.CSS("#token")))
	m := srv.Makers[0]
	b.signIn(base, m.Token)
	b.do("the fleet's maker page", chromedp.Navigate(base+"/console/claims?month=2026-10&lang=en"), chromedp.WaitVisible(chromedp.CSS("#row")))
	checkBrowserRows(t, r, b, m.ID)
	b.accessible("the fleet's maker page")
	b.screenshot("fleet-maker")
}

// browserWanted reports whether the browser tests run: Chromium is on PATH, or CI or
// AMOS_REQUIRE_CHROMIUM demand it (then newBrowser fails without one).
func browserWanted() bool {
	for _, name := range []string{"chromium", "chromium-browser"} {
		if _, err := exec.LookPath(name); err == nil {
			return true
		}
	}
	return os.Getenv("CI") != "" || os.Getenv("AMOS_REQUIRE_CHROMIUM") != ""
}
