package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"amos.example/amosd/collector"
	"amos.example/amosd/collector/claim"
	"amos.example/amosd/collector/collectortest"
	"amos.example/amosd/collector/ledger"
	"amos.example/amosd/proof"
)

// runAt runs the command line in-process with the clock now.
func runAt(t *testing.T, now func() time.Time, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb, func(string) string { return "" }, now)
	return code, out.String(), errb.String()
}

func feb(day int) proof.Date { return proof.NewDate(2027, time.February, day) }

// february2027 is the month of the payer's tests: it closes on 2027-03-11 at 00:00
// UTC+8 (10 days after its end, the default schedule).
var (
	february2027 = collector.Month{Year: 2027, Month: time.February}
	febClosesAt  = time.Date(2027, time.March, 11, 0, 0, 0, 0, time.FixedZone("UTC+8", 8*3600))
)

// ingest ingests records into the ledger of dataDir with the clock now and returns
// their results.
func ingest(t *testing.T, dataDir string, makers collector.Registry, now time.Time, recs ...[]byte) []collector.Result {
	t.Helper()
	l, err := ledger.OpenBolt(dataDir, ledger.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c, err := collector.New(l, collector.Options{Makers: makers, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	rc, err := c.Ingest(recs)
	if err != nil {
		t.Fatal(err)
	}
	return rc.Results
}

// closedMonth returns what the ledger of dataDir stores of month m, nil if it is not
// closed there.
func closedMonth(t *testing.T, dataDir string, m collector.Month) *ledger.ClosedMonth {
	t.Helper()
	l, err := ledger.OpenBolt(dataDir, ledger.BoltOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var cm *ledger.ClosedMonth
	if err := l.View(func(tx ledger.Tx) error {
		var err error
		cm, err = tx.ClosedMonth(m.Key())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return cm
}

// tag returns the serial_tag collectortest.Certify gives label, in hex.
func tag(label string) string {
	s := sha256.Sum256([]byte(label))
	return hex.EncodeToString(s[:])
}

func TestPayerUsage(t *testing.T) {
	dev := strings.Repeat("ab", 32)
	tests := []struct {
		name   string
		args   []string
		stderr string
	}{
		{"registry alone", []string{"registry"}, "registry: want import"},
		{"registry unknown", []string{"registry", "export"}, `registry: unknown command "export", want import`},
		{"registry import without file", []string{"registry", "import"}, "registry import takes 1 argument(s), got 0"},
		{"registry import two files", []string{"registry", "import", "a.csv", "b.csv"}, "registry import takes 1 argument(s), got 2"},
		{"registry import unknown flag", []string{"registry", "import", "--dry-run", "a.csv"}, "flag provided but not defined: -dry-run"},
		{"held alone", []string{"held"}, "held: want list, release, deny or decisions"},
		{"held unknown", []string{"held", "pay"}, `held: unknown command "pay"`},
		{"held list without month", []string{"held", "list"}, `held list: --month: month ""`},
		{"held list bad month", []string{"held", "list", "--month", "2027-13"}, "month not 01..12"},
		{"held list bad format", []string{"held", "list", "--month", "2027-02", "--format", "xml"}, `held list: --format "xml", want json or csv`},
		{"held list argument", []string{"held", "list", "--month", "2027-02", "x"}, `held list takes no arguments, got "x"`},
		{"release without month", []string{"held", "release", "--device", dev, "--by", "a", "--why", "b"}, `held release: --month: month ""`},
		{"release without device", []string{"held", "release", "--month", "2027-02", "--by", "a", "--why", "b"}, "held release: --device DEVICE_ID is required"},
		{"release bad device", []string{"held", "release", "--month", "2027-02", "--device", "zz", "--by", "a", "--why", "b"}, `held release: --device "zz" is not 64 hex digits`},
		{"release without by", []string{"held", "release", "--month", "2027-02", "--device", dev, "--why", "b"}, "held release: --by is required"},
		{"release blank by", []string{"held", "release", "--month", "2027-02", "--device", dev, "--by", "  ", "--why", "b"}, "held release: --by is required"},
		{"release without why", []string{"held", "release", "--month", "2027-02", "--device", dev, "--by", "a"}, "held release: --why is required"},
		{"release long by", []string{"held", "release", "--month", "2027-02", "--device", dev, "--by", strings.Repeat("a", 256), "--why", "b"}, "--by is not UTF-8 of at most 255 bytes"},
		{"deny long why", []string{"held", "deny", "--month", "2027-02", "--device", dev, "--by", "a", "--why", strings.Repeat("b", 4097)}, "held deny: --why is not UTF-8 of at most 4096 bytes"},
		{"deny without flags", []string{"held", "deny"}, `held deny: --month: month ""`},
		{"deny argument", []string{"held", "deny", "--month", "2027-02", "--device", dev, "--by", "a", "--why", "b", "now"}, `held deny takes no arguments, got "now"`},
		{"decisions without month", []string{"held", "decisions"}, `held decisions: --month: month ""`},
		{"decisions format", []string{"held", "decisions", "--month", "2027-02", "--format", "csv"}, "flag provided but not defined: -format"},
		{"claims devices bad format", []string{"claims", "--month", "2027-02", "--devices", "--format", "xml"}, `claims: --format "xml"`},
		{"claims devices with a value", []string{"claims", "--month", "2027-02", "--devices=maybe"}, "invalid boolean value"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// A configuration that does not exist: usage errors come before it is read.
			code, out, errs := runCLI(t, nil, append([]string{"--config", "/nonexistent/c.json"}, tc.args...)...)
			if code != exitUsage || out != "" || !strings.Contains(errs, tc.stderr) || !strings.Contains(errs, "amos-collector help") {
				t.Errorf("exit %d, want 2; stdout %q; stderr %q does not contain %q", code, out, errs, tc.stderr)
			}
		})
	}
}

func TestRegistryImport(t *testing.T) {
	konka, tcl := collectortest.Key(t, "maker konka"), collectortest.Key(t, "maker tcl")
	dataDir := t.TempDir()
	cfg := writeConfig(t, testConfig{AllowInsecureHTTP: true, DataDir: dataDir, Makers: []testMaker{
		{ID: "konka", PublicKey: konka.PublicKey().String(), TokenSHA256: hash("k")},
		{ID: "tcl", PublicKey: tcl.PublicKey().String(), TokenSHA256: hash("t")}}})
	now := testNow
	imp := func(file string) (int, string, string) {
		t.Helper()
		return runAt(t, now, "--config", cfg, "registry", "import", file)
	}
	const header = "serial_tag,maker_id,sold_at,channel\n"
	first := writeFile(t, "first.csv", header+
		tag("r1")+",konka,2026-09-01,taobao\n"+
		tag("r2")+",konka,2026-09-02T10:00:00+08:00,taobao\n"+
		tag("r3")+",tcl,2026-09-03,carrier-1\n")
	// The first import makes the ledger.
	if code, out, errs := imp(first); code != 0 || out != "imported 3 sales from "+first+" (0 already registered)\n" || errs != "" {
		t.Fatalf("first import: %d %q %q", code, out, errs)
	}
	// Again: nothing added, everything unchanged.
	if code, out, errs := imp(first); code != 0 || out != "imported 0 sales from "+first+" (3 already registered)\n" {
		t.Errorf("second import: %d %q %q", code, out, errs)
	}
	// JSON, one row known and one new.
	second := writeFile(t, "second.json", `{"sales": [
  {"serial_tag": "`+tag("r3")+`", "maker_id": "tcl", "sold_at": "2026-09-03", "channel": "carrier-1"},
  {"serial_tag": "`+tag("r4")+`", "maker_id": "tcl", "sold_at": "2026-09-04", "channel": "carrier-1"}
]}`)
	if code, out, errs := imp(second); code != 0 || out != "imported 1 sales from "+second+" (1 already registered)\n" {
		t.Errorf("json import: %d %q %q", code, out, errs)
	}

	registered := func(label string) *ledger.Sale {
		t.Helper()
		l, err := ledger.OpenBolt(dataDir, ledger.BoltOptions{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		var s *ledger.Sale
		var key [32]byte
		hex.Decode(key[:], []byte(tag(label)))
		if err := l.View(func(tx ledger.Tx) error {
			var err error
			s, err = tx.Sale(key)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return s
	}
	if s := registered("r2"); s == nil || s.MakerID != "konka" || s.SoldAt != proof.NewDate(2026, 9, 2) || s.Channel != "taobao" || s.RegisteredAt != now().Unix() {
		t.Errorf("r2 registered as %+v", s)
	}

	refused := []struct {
		name, body, want string
		fresh            []string // labels of the file that must not be registered after
	}{
		{"bad date at line 3", header + tag("r5") + ",konka,2026-09-05,taobao\n" + tag("r6") + ",konka,2026-13-01,taobao\n",
			`line 3: sold_at "2026-13-01": not a date`, []string{"r5", "r6"}},
		{"serial tag of another maker", header + tag("r7") + ",tcl,2026-09-07,taobao\n" + tag("r1") + ",tcl,2026-09-01,taobao\n",
			"line 3: serial_tag \"" + tag("r1") + "\": already registered as sold by konka on 2026-09-01 through taobao", []string{"r7"}},
		{"unknown maker", header + tag("r8") + ",sony,2026-09-08,taobao\n", `line 2: maker_id "sony": not a registered maker`, []string{"r8"}},
		{"no rows", header, ": no rows", nil},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			file := writeFile(t, "refused.csv", tc.body)
			code, out, errs := imp(file)
			if code != exitFailed || out != "" || !strings.Contains(errs, "registry import: "+file) || !strings.Contains(errs, tc.want) ||
				!strings.Contains(errs, "nothing was imported") || strings.Contains(errs, "collector: sales import") {
				t.Errorf("exit %d; stdout %q; stderr %q does not contain %q", code, out, errs, tc.want)
			}
			for _, label := range tc.fresh {
				if s := registered(label); s != nil {
					t.Errorf("%s was registered: %+v", label, s)
				}
			}
		})
	}
	if s := registered("r1"); s == nil || s.MakerID != "konka" {
		t.Errorf("r1 is now %+v", s)
	}
	if code, _, errs := imp("/nonexistent/sales.csv"); code != exitFailed || !strings.Contains(errs, "no such file") || !strings.Contains(errs, "nothing was imported") {
		t.Errorf("missing file: %d %s", code, errs)
	}
	// While a server holds the ledger, POST /v1/registry is the way.
	l, err := ledger.OpenBolt(dataDir, ledger.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if code, _, errs := imp(first); code != exitFailed || !strings.Contains(errs, "in use") || !strings.Contains(errs, "POST /v1/registry") {
		t.Errorf("ledger in use: %d %s", code, errs)
	}
}

// TestHeldCommands builds a ledger of February 2027 by ingesting records (two
// saturated devices are held, one paid, one unregistered, one whose serial tag is
// registered to another maker), then lists, releases and denies the held devices
// before the month closes, shows the audit trail, and after the close: a decision is
// refused, the claim is stored and shown closed, and a late record only moves `late`.
func TestHeldCommands(t *testing.T) {
	konka, tcl := collectortest.Key(t, "maker konka"), collectortest.Key(t, "maker tcl")
	makers := collector.Registry{"konka": konka.PublicKey(), "tcl": tcl.PublicKey()}
	dataDir := t.TempDir()
	cfg := writeConfig(t, testConfig{AllowInsecureHTTP: true, DataDir: dataDir, Makers: []testMaker{
		{ID: "konka", PublicKey: konka.PublicKey().String(), TokenSHA256: hash("k")},
		{ID: "tcl", PublicKey: tcl.PublicKey().String(), TokenSHA256: hash("t")}}})
	clock := time.Date(2027, time.March, 5, 4, 0, 0, 0, time.UTC)
	now := func() time.Time { return clock }
	cli := func(args ...string) (int, string, string) {
		t.Helper()
		return runAt(t, now, append([]string{"--config", cfg}, args...)...)
	}

	type spec struct {
		label, maker string
		seconds      uint32
		unlocks      uint16
	}
	specs := []spec{
		{"held a", "konka", 60000, 5}, // saturated: all 24 hours and 60000 s, 12 days
		{"held b", "konka", 61000, 6}, // saturated
		{"paid c", "konka", 1000, 4},
		{"unregistered d", "tcl", 1100, 7},
		{"other e", "konka", 1200, 8}, // its serial tag is registered to tcl
	}
	devs := map[string]*collectortest.Device{}
	var recs [][]byte
	for _, s := range specs {
		key := konka
		if s.maker == "tcl" {
			key = tcl
		}
		d := collectortest.NewDevice(t, s.label)
		d.Cert = collectortest.Certify(t, key, s.maker, d.Key.PublicKey(), s.label, clock.AddDate(0, -2, 0))
		devs[s.label] = d
		recs = append(recs, d.Genesis())
		for day := 1; day <= 12; day++ {
			recs = append(recs, d.Day(feb(day), s.seconds, s.unlocks))
		}
	}
	for i, r := range ingest(t, dataDir, makers, clock, recs...) {
		if r.Status != collector.StatusAccepted {
			t.Fatalf("record %d: %s", i, r)
		}
	}
	sold := writeFile(t, "sold.csv", "serial_tag,maker_id,sold_at,channel\n"+
		tag("held a")+",konka,2027-01-15,taobao\n"+tag("held b")+",konka,2027-01-15,taobao\n"+
		tag("paid c")+",konka,2027-02-01,taobao\n"+tag("other e")+",tcl,2027-01-20,carrier-1\n")
	if code, out, errs := cli("registry", "import", sold); code != 0 || !strings.Contains(out, "imported 4 sales") {
		t.Fatalf("registry import: %d %s %s", code, out, errs)
	}
	a, b, c := devs["held a"].ID().String(), devs["held b"].ID().String(), devs["paid c"].ID().String()

	// The held devices, with their reasons and findings.
	code, out, errs := cli("held", "list", "--month", "2027-02")
	var held devicesView
	if code != 0 || json.Unmarshal([]byte(out), &held) != nil || held.Month != "2027-02" || held.Status != claim.StatusProvisional || len(held.Devices) != 2 {
		t.Fatalf("held list: %d %q %s", code, out, errs)
	}
	for _, d := range held.Devices {
		if (d.DeviceID != a && d.DeviceID != b) || d.Outcome != claim.Held || !contains(d.Reasons, "saturated") || len(d.Findings) == 0 ||
			d.Findings[0].Signal != "saturated" || !strings.Contains(d.Findings[0].Detail, "12 saturated days") || d.MakerID != "konka" || d.ActiveDays != 12 {
			t.Errorf("held device %+v", d)
		}
	}
	code, out, _ = cli("held", "list", "--month", "2027-02", "--format", "csv")
	if lines := strings.Split(strings.TrimSpace(out), "\n"); code != 0 || len(lines) != 3 ||
		lines[0] != "month,device_id,maker_id,serial_tag,active_days,outcome,reasons,signals,decision,decided_by,decided_at" ||
		!strings.Contains(out, "2027-02,"+a+",konka,"+tag("held a")+",12,held,saturated,saturated,,,\n") {
		t.Errorf("held list csv: %d %q", code, out)
	}
	// An empty month lists no device.
	if code, out, _ := cli("held", "list", "--month", "2027-03"); code != 0 || out != `{"month":"2027-03","status":"provisional","devices":[]}`+"\n" {
		t.Errorf("held list of an empty month: %d %q", code, out)
	}

	// Release a, deny b an hour later; c is not held, nor is a device without records.
	code, out, errs = cli("held", "release", "--month", "2027-02", "--device", a, "--by", "alice", "--why", "demo units of the Taobao store")
	if code != 0 || out != "release device "+a+" in 2027-02: stored at 2027-03-05T04:00:00Z by alice: demo units of the Taobao store\n" {
		t.Errorf("release: %d %q %s", code, out, errs)
	}
	code, out, _ = cli("held", "decisions", "--month", "2027-02")
	if want := `{"month":"2027-02","decisions":[{"device_id":"` + a + `","decision":"release","at":"2027-03-05T04:00:00Z","by":"alice","why":"demo units of the Taobao store"}]}` + "\n"; code != 0 || out != want {
		t.Errorf("decisions: %d\n%s\nwant\n%s", code, out, want)
	}
	clock = clock.Add(time.Hour)
	if code, out, errs := cli("held", "deny", "--month", "2027-02", "--device", b, "--by", "bob", "--why", "a farm"); code != 0 || !strings.HasPrefix(out, "deny device "+b) {
		t.Errorf("deny: %d %q %s", code, out, errs)
	}
	for _, id := range []string{c, strings.Repeat("0", 64)} {
		if code, out, errs := cli("held", "release", "--month", "2027-02", "--device", id, "--by", "alice", "--why", "x"); code != exitFailed || out != "" ||
			!strings.Contains(errs, "device not held") || !strings.Contains(errs, "held list --month 2027-02") {
			t.Errorf("release of %s: %d %q %s", id, code, out, errs)
		}
	}
	code, out, _ = cli("held", "decisions", "--month", "2027-02")
	var trail struct {
		Decisions []decisionView `json:"decisions"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &trail) != nil || len(trail.Decisions) != 2 {
		t.Fatalf("decisions: %d %s", code, out)
	}
	for _, d := range trail.Decisions {
		if d.DeviceID == b && (d.Decision != "deny" || d.At != "2027-03-05T05:00:00Z" || d.By != "bob" || d.Why != "a farm") {
			t.Errorf("b's decision: %+v", d)
		}
	}
	if code, out, _ := cli("held", "list", "--month", "2027-02"); code != 0 || !strings.Contains(out, `"devices":[]`) {
		t.Errorf("held list after the decisions: %d %s", code, out)
	}

	// The provisional claim: a released and c paid; b denied and e refused; d unregistered.
	wantRows := func(t *testing.T, cl *collector.Claims, late int) {
		t.Helper()
		if len(cl.Rows) != 2 {
			t.Fatalf("rows %+v", cl.Rows)
		}
		k, tr := cl.Rows[0], cl.Rows[1]
		if k.MakerID != "konka" || k.Paid != 2 || k.EligibleDevices != 2 || k.AmountCNY != 2 || k.Held != 0 || k.Refused != 2 || k.Late != late || k.Unregistered != 0 ||
			!reflect.DeepEqual(k.RefusedReasons, map[string]int{claim.ReasonDenied: 1, claim.ReasonOtherMakers: 1}) {
			t.Errorf("konka: %+v", k)
		}
		if tr.MakerID != "tcl" || tr.Paid != 0 || tr.Unregistered != 1 || tr.Refused != 0 || tr.Held != 0 {
			t.Errorf("tcl: %+v", tr)
		}
	}
	claims := func(t *testing.T, args ...string) (*collector.Claims, string) {
		t.Helper()
		code, out, errs := cli(append([]string{"claims", "--month", "2027-02"}, args...)...)
		var cl collector.Claims
		if code != 0 || json.Unmarshal([]byte(out), &cl) != nil {
			t.Fatalf("claims: %d %q %s", code, out, errs)
		}
		return &cl, out
	}
	cl, _ := claims(t)
	if cl.Status != claim.StatusProvisional || cl.ClosedAt != 0 || cl.ClosesAt != febClosesAt.Unix() {
		t.Errorf("provisional claim: %+v", cl)
	}
	wantRows(t, cl, 0)
	code, out, _ = cli("claims", "--month", "2027-02", "--devices")
	var all devicesView
	if code != 0 || json.Unmarshal([]byte(out), &all) != nil || len(all.Devices) != 5 {
		t.Fatalf("--devices: %d %s", code, out)
	}
	for _, d := range all.Devices {
		var want string
		switch d.DeviceID {
		case a:
			want = "paid released release alice"
		case b:
			want = "refused denied deny bob"
		case c:
			want = "paid  "
		case devs["unregistered d"].ID().String():
			want = "unregistered serial_tag_not_registered "
		case devs["other e"].ID().String():
			want = "refused serial_tag_of_another_maker "
		}
		got := string(d.Outcome) + " " + strings.Join(d.Reasons, ",") + " "
		if d.Decision != nil {
			got += d.Decision.Decision + " " + d.Decision.By
		}
		if got != want {
			t.Errorf("device %s: %q, want %q", d.DeviceID, got, want)
		}
	}
	if closedMonth(t, dataDir, february2027) != nil {
		t.Error("an open month was stored")
	}

	// The month closes: decisions are refused, the claim is stored and does not move.
	clock = febClosesAt
	code, out, errs = cli("held", "release", "--month", "2027-02", "--device", b, "--by", "bob", "--why", "changed my mind")
	if code != exitFailed || out != "" || !strings.Contains(errs, "month closed at 2027-03-10T16:00:00Z") {
		t.Errorf("release after the close: %d %q %s", code, out, errs)
	}
	// --read-only computes the closed claim and does not store it.
	cl, first := claims(t, "--read-only")
	if cl.Status != claim.StatusClosed || cl.ClosedAt != febClosesAt.Unix() || closedMonth(t, dataDir, february2027) != nil {
		t.Errorf("--read-only on a closed month: %s", first)
	}
	clock = clock.Add(26 * time.Hour)
	cl, first = claims(t)
	if cl.Status != claim.StatusClosed || cl.ClosedAt != febClosesAt.Unix() || cl.ComputedAt != clock.Unix() {
		t.Errorf("closed claim: %s", first)
	}
	wantRows(t, cl, 0)
	if cm := closedMonth(t, dataDir, february2027); cm == nil || cm.ClosedAt != febClosesAt.Unix() {
		t.Errorf("the closed month is not stored: %+v", cm)
	}
	// A late record of the closed month joins its chain and is never paid: only late moves.
	clock = clock.Add(time.Hour)
	if res := ingest(t, dataDir, makers, clock, devs["paid c"].Day(feb(13), 1000, 4), devs["held b"].Day(feb(13), 61000, 6)); res[0].Reason != collector.ReasonLate || res[1].Reason != collector.ReasonLate {
		t.Errorf("late records: %v", res)
	}
	clock = clock.Add(time.Hour)
	again, second := claims(t)
	wantRows(t, again, 2)
	for i := range again.Rows {
		again.Rows[i].Late = 0
	}
	if !reflect.DeepEqual(cl, again) {
		t.Errorf("the closed claim moved:\n%s%s", first, second)
	}
	code, out, _ = cli("claims", "--month", "2027-02", "--format", "csv")
	if want := fmt.Sprintf("maker_id,eligible_devices,amount_cny,paid,held,refused,late,unregistered,status,closed_at\nkonka,2,2,2,0,2,2,0,closed,%d\ntcl,0,0,0,0,0,0,1,closed,%d\n",
		febClosesAt.Unix(), febClosesAt.Unix()); code != 0 || out != want {
		t.Errorf("closed csv: %d\n%s\nwant\n%s", code, out, want)
	}
	if code, out, _ := cli("held", "list", "--month", "2027-02"); code != 0 || out != fmt.Sprintf(`{"month":"2027-02","status":"closed","closed_at":%d,"devices":[]}`+"\n", febClosesAt.Unix()) {
		t.Errorf("held list of the closed month: %d %s", code, out)
	}
	if code, out, _ := cli("held", "decisions", "--month", "2027-02"); code != 0 || strings.Count(out, `"decision"`) != 2 {
		t.Errorf("decisions after the close: %d %s", code, out)
	}

	// While a server holds the ledger, each command names the HTTP way.
	l, err := ledger.OpenBolt(dataDir, ledger.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"held", "list", "--month", "2027-02"}, "GET /v1/claims/devices?month=2027-02&outcome=held"},
		{[]string{"held", "release", "--month", "2027-02", "--device", b, "--by", "a", "--why", "b"}, "POST /v1/held/" + b},
		{[]string{"held", "deny", "--month", "2027-02", "--device", b, "--by", "a", "--why", "b"}, `"decision":"deny"`},
		{[]string{"held", "decisions", "--month", "2027-02"}, "GET /v1/decisions?month=2027-02"},
		{[]string{"claims", "--month", "2027-02"}, "GET /v1/claims?month=2027-02"},
	} {
		if code, out, errs := cli(tc.args...); code != exitFailed || out != "" || !strings.Contains(errs, "in use") || !strings.Contains(errs, tc.want) {
			t.Errorf("%v with the ledger in use: %d %q %s", tc.args, code, out, errs)
		}
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// TestHeldCommandsNeedALedger: the offline commands never make a ledger.
func TestHeldCommandsNeedALedger(t *testing.T) {
	dataDir := t.TempDir()
	cfg := writeConfig(t, testConfig{AllowInsecureHTTP: true, DataDir: dataDir, Makers: []testMaker{}})
	for _, args := range [][]string{
		{"held", "list", "--month", "2027-02"},
		{"held", "release", "--month", "2027-02", "--device", strings.Repeat("ab", 32), "--by", "a", "--why", "b"},
		{"held", "decisions", "--month", "2027-02"},
		{"claims", "--month", "2027-02", "--read-only"},
	} {
		if code, _, errs := runCLI(t, nil, append([]string{"--config", cfg}, args...)...); code != exitFailed || !strings.Contains(errs, "no such file") {
			t.Errorf("%v: %d %s", args, code, errs)
		}
	}
}

// TestServeClosesDueMonths: serve stores, when it starts, the months whose moment has
// passed, without anybody asking for their claims.
func TestServeClosesDueMonths(t *testing.T) {
	konka := collectortest.Key(t, "maker konka")
	dataDir := t.TempDir()
	cfg := writeConfig(t, testConfig{Listen: "127.0.0.1:0", AllowInsecureHTTP: true, DataDir: dataDir,
		Makers: []testMaker{{ID: "konka", PublicKey: konka.PublicKey().String(), TokenSHA256: hash("konka token")}}})
	d := collectortest.NewDevice(t, "closes")
	clock := time.Date(2027, time.March, 5, 4, 0, 0, 0, time.UTC)
	d.Cert = collectortest.Certify(t, konka, "konka", d.Key.PublicKey(), "closes", clock.AddDate(0, -2, 0))
	recs := [][]byte{d.Genesis()}
	for day := 1; day <= 12; day++ {
		recs = append(recs, d.Active(feb(day)))
	}
	ingest(t, dataDir, collector.Registry{"konka": konka.PublicKey()}, clock, recs...)
	sold := writeFile(t, "sold.csv", "serial_tag,maker_id,sold_at,channel\n"+tag("closes")+",konka,2027-01-15,taobao\n")
	if code, _, errs := runAt(t, func() time.Time { return clock }, "--config", cfg, "registry", "import", sold); code != 0 {
		t.Fatalf("registry import: %d %s", code, errs)
	}

	started := febClosesAt.Add(time.Minute)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := &lineWatcher{want: "serving http on", lines: make(chan string, 1)}
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--config", cfg, "serve"}, io.Discard, w, func(string) string { return "" }, func() time.Time { return started })
	}()
	select {
	case <-w.lines:
	case code := <-done:
		t.Fatalf("serve exited %d before serving:\n%s", code, w.all.String())
	case <-time.After(time.Minute):
		t.Fatal("serve did not start within a minute")
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("serve exited %d:\n%s", code, w.all.String())
		}
	case <-time.After(time.Minute):
		t.Fatal("serve did not stop within a minute")
	}
	if strings.Contains(w.all.String(), "closing the due months") {
		t.Errorf("log:\n%s", w.all.String())
	}
	cm := closedMonth(t, dataDir, february2027)
	if cm == nil || cm.ClosedAt != febClosesAt.Unix() {
		t.Fatalf("February is not stored: %+v", cm)
	}
	var stored collector.Claims
	if err := json.Unmarshal(cm.Claim, &stored); err != nil || stored.Status != claim.StatusClosed || len(stored.Rows) != 1 || stored.Rows[0].Paid != 1 ||
		stored.ComputedAt != started.Unix() {
		t.Errorf("stored claim %s: %v", cm.Claim, err)
	}
	// March is open: not stored.
	if cm := closedMonth(t, dataDir, collector.Month{Year: 2027, Month: time.March}); cm != nil {
		t.Errorf("March stored: %+v", cm)
	}
}

func TestCloseDueLoop(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var calls atomic.Int32
	enough := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		closeDueLoop(ctx, 5*time.Millisecond, func() {
			if calls.Add(1) == 3 {
				close(enough)
			}
		})
	}()
	select {
	case <-enough:
	case <-time.After(time.Minute):
		t.Fatal("closeDueLoop did not call three times within a minute")
	}
	cancel()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("closeDueLoop did not return once its context was done")
	}
	n := calls.Load()
	time.Sleep(20 * time.Millisecond)
	if calls.Load() != n {
		t.Error("closeDueLoop called after it returned")
	}
}
