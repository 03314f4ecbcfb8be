package console

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"amos.example/amosd/collector"
	"amos.example/amosd/collector/claim"
	"amos.example/amosd/proof"
)

// noTokens fails when a page, a header or the log holds one of the rig's tokens.
func noTokens(t *testing.T, r *rig, where string, texts ...string) {
	t.Helper()
	for _, s := range append(texts, r.logs.String()) {
		for who, tok := range tokens {
			if strings.Contains(s, tok) {
				t.Errorf("%s: %s's token echoed", where, who)
			}
		}
	}
}

func TestSignInSession(t *testing.T) {
	r := newRig(t, true)
	c := r.client()
	status, hdr, _ := c.do("GET", "/console/claims", nil, nil)
	if status != http.StatusSeeOther || hdr.Get("Location") != "/console/signin" {
		t.Fatalf("without a session: %d %v", status, hdr)
	}
	tok := c.csrf("/console/signin")
	// Without the form's CSRF token, and with another, the sign-in is refused.
	for _, form := range []url.Values{{"token": {tokens["konka"]}}, {"token": {tokens["konka"]}, "csrf": {tok + "x"}}} {
		if status, hdr, body := c.do("POST", "/console/signin", form, nil); status != http.StatusForbidden || hdr.Get("Set-Cookie") != "" {
			t.Errorf("sign-in without its CSRF token: %d %v", status, hdr)
		} else {
			noTokens(t, r, "refused sign-in", body)
		}
	}
	// A wrong token: 401, the form again, the token not put back. Two forms opened
	// one after the other both work.
	tok = c.csrf("/console/signin")
	if again := c.csrf("/console/signin"); again != tok {
		t.Errorf("a second sign-in form changed the first's CSRF token")
	}
	status, _, body := c.do("POST", "/console/signin", url.Values{"csrf": {tok}, "token": {"konka-secret-guess"}}, nil)
	if status != http.StatusUnauthorized || strings.Contains(body, "konka-secret-guess") || !strings.Contains(body, `id="problem"`) {
		t.Errorf("wrong token: %d %s", status, body)
	}
	tok = csrfField.FindStringSubmatch(body)[1]
	status, hdr, body = c.do("POST", "/console/signin", url.Values{"csrf": {tok}, "token": {tokens["konka"]}}, nil)
	if status != http.StatusSeeOther {
		t.Fatalf("sign-in: %d %s", status, body)
	}
	noTokens(t, r, "sign-in", body, strings.Join(hdr.Values("Set-Cookie"), "\n"), hdr.Get("Location"))
	var session *http.Cookie
	for _, ck := range (&http.Response{Header: hdr}).Cookies() {
		if ck.Name == sessionCookie {
			session = ck
		}
	}
	switch {
	case session == nil:
		t.Fatalf("no session cookie: %v", hdr.Values("Set-Cookie"))
	case !session.HttpOnly || !session.Secure || session.SameSite != http.SameSiteStrictMode || session.Path != Prefix:
		t.Errorf("session cookie %+v, want HttpOnly, Secure, SameSite=Strict, Path %s", session, Prefix)
	case session.MaxAge != int(SessionLifetime.Seconds()) || len(session.Value) != 43:
		t.Errorf("session cookie max-age %d, value of %d characters", session.MaxAge, len(session.Value))
	}
	if status, body := c.get("/console/"); status != http.StatusSeeOther || !strings.Contains(body, "/console/claims") {
		t.Errorf("home of a maker: %d %s", status, body)
	}
	status, body = c.get("/console/claims?month=2026-10")
	if status != 200 || !strings.Contains(body, "konka") {
		t.Fatalf("claims: %d %s", status, body)
	}
	noTokens(t, r, "claims", body)
	// The session ends 12 hours after sign-in, whatever is done with it.
	r.clock.add(SessionLifetime - time.Second)
	if status, _ := c.get("/console/claims?month=2026-10"); status != 200 {
		t.Errorf("a second before expiry: %d", status)
	}
	r.clock.add(time.Second)
	if status, hdr, _ := c.do("GET", "/console/claims?month=2026-10", nil, nil); status != http.StatusSeeOther || hdr.Get("Location") != "/console/signin" {
		t.Errorf("expired session: %d %v", status, hdr)
	}
}

func TestSignOut(t *testing.T) {
	r := newRig(t, false)
	c := r.client()
	csrf := c.signIn("konka")
	if status, _, _ := c.do("POST", "/console/signout", url.Values{}, nil); status != http.StatusForbidden {
		t.Errorf("sign-out without CSRF token: %d", status)
	}
	if status, _ := c.get("/console/claims?month=2026-10"); status != 200 {
		t.Errorf("still signed in after a refused sign-out: %d", status)
	}
	if status, hdr, _ := c.do("POST", "/console/signout", url.Values{"csrf": {csrf}}, nil); status != http.StatusSeeOther || hdr.Get("Location") != "/console/signin" {
		t.Errorf("sign-out: %d %v", status, hdr)
	}
	if status, _ := c.get("/console/claims?month=2026-10"); status != http.StatusSeeOther {
		t.Errorf("after sign-out: %d", status)
	}
}

// TestAuthorization: a maker sees its own pages only, never another maker's nor the
// payer's; the payer sees all.
func TestAuthorization(t *testing.T) {
	r := newRig(t, true)
	konka, tclC, payer := r.client(), r.client(), r.client()
	kcsrf := konka.signIn("konka")
	tclC.signIn("tcl")
	payer.signIn("payer")
	f0, k1 := r.devs["f0"].ID().String(), r.devs["k1"].ID().String()
	for _, tc := range []struct {
		name   string
		c      *client
		path   string
		status int
	}{
		{"konka own claim", konka, "/console/claims?month=2026-10", 200},
		{"konka names itself", konka, "/console/claims?month=2026-10&maker=konka", 200},
		{"konka asks for tcl", konka, "/console/claims?month=2026-10&maker=tcl", 403},
		{"konka asks for the payer's view", konka, "/console/payer?month=2026-10", 403},
		{"konka's own device", konka, "/console/devices/" + k1 + "?month=2026-10", 200},
		{"konka asks for tcl's device", konka, "/console/devices/" + f0 + "?month=2026-10", 404},
		{"tcl asks for konka's device", tclC, "/console/devices/" + k1 + "?month=2026-10", 404},
		{"tcl asks for konka", tclC, "/console/claims?maker=konka", 403},
		{"bad month", konka, "/console/claims?month=2026-13", 400},
		{"payer view", payer, "/console/payer?month=2026-10", 200},
		{"payer sees konka", payer, "/console/claims?month=2026-10&maker=konka", 200},
		{"payer sees a device", payer, "/console/devices/" + f0 + "?month=2026-10", 200},
		{"payer, unknown maker", payer, "/console/claims?month=2026-10&maker=ghost", 404},
		{"payer, unknown device", payer, "/console/devices/" + strings.Repeat("ab", 32), 404},
	} {
		status, body := tc.c.get(tc.path)
		if status != tc.status {
			t.Errorf("%s: %d, want %d", tc.name, status, tc.status)
		}
		noTokens(t, r, tc.name, body)
		if tc.c == konka && status == 200 && strings.Contains(body, f0) {
			t.Errorf("%s: konka's page shows tcl's device", tc.name)
		}
	}
	// A maker's POST to the review queue is refused even with its own CSRF token.
	form := url.Values{"csrf": {kcsrf}, "month": {"2026-10"}, "decision": {"release"}, "by": {"me"}, "why": {"mine"}}
	if status, _, _ := konka.do("POST", "/console/held/"+f0, form, nil); status != http.StatusForbidden {
		t.Errorf("a maker's decision: %d", status)
	}
	// The payer's POST without the session's CSRF token, or with a maker's, is refused.
	for _, tok := range []string{"", kcsrf} {
		form.Set("csrf", tok)
		if status, _, _ := payer.do("POST", "/console/held/"+f0, form, nil); status != http.StatusForbidden {
			t.Errorf("decision with CSRF token %q: %d", tok, status)
		}
	}
	if ds, err := r.coll.Decisions(october); err != nil || len(ds) != 0 {
		t.Fatalf("decisions after refused posts: %v %v", ds, err)
	}
	// Without a session at all.
	if status, _, _ := r.client().do("POST", "/console/held/"+f0, form, nil); status != http.StatusForbidden {
		t.Errorf("decision without a session: %d", status)
	}
}

// TestDecide: the review queue's forms record the decision through Collector.Decide.
func TestDecide(t *testing.T) {
	r := newRig(t, false)
	payer := r.client()
	csrf := payer.signIn("payer")
	f0, f1, k1 := r.devs["f0"].ID().String(), r.devs["f1"].ID().String(), r.devs["k1"].ID().String()
	for _, tc := range []struct {
		name     string
		id       string
		form     url.Values
		status   int
		contains string
	}{
		{"no why", f0, url.Values{"decision": {"release"}, "by": {"li"}, "why": {" "}}, 400, "required"},
		{"no decision", f0, url.Values{"decision": {"maybe"}, "by": {"li"}, "why": {"x"}}, 400, "release or deny"},
		{"not held", k1, url.Values{"decision": {"deny"}, "by": {"li"}, "why": {"x"}}, 409, "not held"},
		{"closed month", f0, url.Values{"month": {"2026-09"}, "decision": {"deny"}, "by": {"li"}, "why": {"x"}}, 409, "closed"},
		{"release", f0, url.Values{"decision": {"release"}, "by": {"li"}, "why": {"checked the shop"}}, 303, ""},
		{"deny", f1, url.Values{"decision": {"deny"}, "by": {"wang"}, "why": {"farm"}}, 303, ""},
	} {
		tc.form.Set("csrf", csrf)
		if tc.form.Get("month") == "" {
			tc.form.Set("month", "2026-10")
		}
		status, hdr, body := payer.do("POST", "/console/held/"+tc.id, tc.form, map[string]string{"Accept-Language": "en"})
		if status != tc.status || !strings.Contains(body, tc.contains) {
			t.Errorf("%s: %d %s, want %d %q", tc.name, status, body, tc.status, tc.contains)
		}
		if status == 303 && hdr.Get("Location") != "/console/payer?month=2026-10#review" {
			t.Errorf("%s: to %s", tc.name, hdr.Get("Location"))
		}
	}
	ds, err := r.coll.Decisions(october)
	if err != nil || len(ds) != 2 {
		t.Fatalf("decisions %+v %v", ds, err)
	}
	cl, err := r.coll.Claims(october)
	if err != nil {
		t.Fatal(err)
	}
	if d := cl.Find(r.devs["f0"].ID()); d.Outcome != claim.Paid || d.Decision == nil || d.Decision.By != "li" {
		t.Errorf("released device %+v", d)
	}
	if d := cl.Find(r.devs["f1"].ID()); d.Outcome != claim.Refused {
		t.Errorf("denied device %+v", d)
	}
	// tcl's page, as the payer sees it, counts the denial among the refusals by reason.
	if _, body := payer.get("/console/claims?maker=tcl&month=2026-10&lang=zh"); !strings.Contains(body, `<th scope="row" data-code="denied">付款方拒付</th><td class="num">1</td>`) {
		t.Errorf("tcl's refusals by reason: %s", body)
	}
	payer.get("/console/payer?month=2026-10&lang=en") // back to English, kept in the cookie
	// The payer's page shows the new figures, which are the claim's.
	checkRows(t, r, payer, "/console/payer?month=2026-10")
	// Once October has closed, its two held devices are listed without forms.
	r.clock.add(7 * 24 * time.Hour)
	payer.signIn("payer")
	_, body := payer.get("/console/payer?month=2026-10")
	if strings.Contains(body, `action="/console/held/`) || !strings.Contains(body, `id="review-closed"`) || !strings.Contains(body, r.devs["f2"].ID().String()) {
		t.Errorf("closed month's review queue: %s", body)
	}
	checkRows(t, r, payer, "/console/payer?month=2026-10")
}

var rowRe = regexp.MustCompile(`(?s)<tr data-maker="([a-z]+)">(.*?)</tr>`)
var fieldRe = regexp.MustCompile(`data-field="([a-z_]+)">([^<]*)<`)

// checkRows compares the payer page's rows with Collector.Claims.
func checkRows(t *testing.T, r *rig, c *client, path string) {
	t.Helper()
	cl, err := r.coll.Claims(october)
	if err != nil {
		t.Fatal(err)
	}
	status, body := c.get(path)
	if status != 200 {
		t.Fatalf("%s: %d", path, status)
	}
	rows := rowRe.FindAllStringSubmatch(body, -1)
	if len(rows) != len(cl.Rows) {
		t.Fatalf("%d rows on the page, %d in the claim", len(rows), len(cl.Rows))
	}
	for i, row := range rows {
		want := cl.Rows[i]
		got := map[string]string{}
		for _, f := range fieldRe.FindAllStringSubmatch(row[2], -1) {
			got[f[1]] = f[2]
		}
		exp := map[string]string{"paid": strconv.Itoa(want.Paid), "held": strconv.Itoa(want.Held), "refused": strconv.Itoa(want.Refused),
			"late": strconv.Itoa(want.Late), "unregistered": strconv.Itoa(want.Unregistered), "amount_cny": "CNY " + strconv.Itoa(want.AmountCNY)}
		for k, v := range exp {
			if row[1] != want.MakerID || got[k] != v {
				t.Errorf("%s %s: page %q, claim %q", row[1], k, got[k], v)
			}
		}
	}
}

func TestPayerPage(t *testing.T) {
	r := newRig(t, false)
	payer := r.client()
	payer.signIn("payer")
	checkRows(t, r, payer, "/console/payer?month=2026-10")
	_, body := payer.get("/console/payer?month=2026-10")
	cl, _ := r.coll.Claims(october)
	if cl.Rows[1].Held != 4 || cl.Rows[0].Paid != 2 || cl.Rows[0].Unregistered != 1 {
		t.Fatalf("the rig's claim: %+v", cl.Rows)
	}
	if n := strings.Count(body, `<form method="post" action="/console/held/`); n != 4 {
		t.Errorf("%d review forms, want 4", n)
	}
	for _, want := range []string{`<label for="why-` + r.devs["f2"].ID().String() + `">Why</label>`, `<th scope="col">`, "provisional",
		"Closes at 11 Nov 2026 00:00 (UTC&#43;8)"} {
		if !strings.Contains(body, want) {
			t.Errorf("payer page lacks %s", want)
		}
	}
	// The charts: a bar per day of October, a bar per count of active days 0..31 whose
	// heights add up to the month's device keys, and the threshold line.
	if n := strings.Count(chartOf(body, "daily"), `class="bar"`); n != 31 {
		t.Errorf("daily chart: %d bars", n)
	}
	hist := chartOf(body, "hist")
	if n := strings.Count(hist, `class="bar"`); n != 32 {
		t.Errorf("histogram: %d bars", n)
	}
	sum := 0
	for _, m := range regexp.MustCompile(`data-value="(\d+)"`).FindAllStringSubmatch(hist, -1) {
		v, _ := strconv.Atoi(m[1])
		sum += v
	}
	if sum != len(cl.Devices) || !strings.Contains(hist, `class="threshold"`) {
		t.Errorf("histogram: %d devices, claim %d; %s", sum, len(cl.Devices), hist)
	}
	// Every device of the rig has at least 4 days from the 1st: nine active on the 4th.
	if !strings.Contains(chartOf(body, "daily"), `data-value="9"><title>4: 9</title>`) {
		t.Errorf("daily chart on the 4th: %s", chartOf(body, "daily"))
	}
}

// chartOf returns the SVG of the chart with id.
func chartOf(body, id string) string {
	_, s, _ := strings.Cut(body, `<svg class="chart" id="`+id+`"`)
	s, _, _ = strings.Cut(s, "</svg>")
	return s
}

func TestMakerPage(t *testing.T) {
	r := newRig(t, false)
	tcl := r.client()
	tcl.signIn("tcl")
	status, body := tcl.get("/console/claims?month=2026-10")
	if status != 200 {
		t.Fatal(status)
	}
	for _, want := range []string{`data-field="paid">1<`, `data-field="held">4<`, `data-field="amount_cny">CNY 1<`, `data-code="clone">clone: shares identical counters`, `id="held"`,
		r.devs["f3"].ID().String()[:16], `data-field="attested">0.0 %<`} {
		if !strings.Contains(body, want) {
			t.Errorf("tcl's page lacks %s", want)
		}
	}
	if strings.Contains(body, `<form method="post" action="/console/held/`) {
		t.Error("a maker's page has decision forms")
	}
	if n := strings.Count(chartOf(body, "hist"), `class="bar"`); n != 32 {
		t.Errorf("histogram: %d bars", n)
	}
	status, body = tcl.get("/console/devices/" + r.devs["f0"].ID().String() + "?month=2026-10")
	if status != 200 || !strings.Contains(body, "not attested") || !strings.Contains(body, `<td class="num">31</td>`) {
		t.Errorf("device page: %d %s", status, body)
	}
}

func TestLanguage(t *testing.T) {
	r := newRig(t, false)
	c := r.client()
	_, _, body := c.do("GET", "/console/signin", nil, map[string]string{"Accept-Language": "fr-FR, zh-CN;q=0.8, en;q=0.5"})
	if !strings.Contains(body, `lang="zh-Hans"`) || !strings.Contains(body, "登录") {
		t.Errorf("Accept-Language zh: %s", body)
	}
	c.signIn("konka")
	_, _, body = c.do("GET", "/console/claims?month=2026-10&lang=zh", nil, map[string]string{"Accept-Language": "en"})
	if !strings.Contains(body, "2026年10月") || !strings.Contains(body, `data-field="amount_cny">2 元<`) || !strings.Contains(body, "2026年11月11日 00:00") {
		t.Errorf("Chinese claim page: %s", body)
	}
	// The choice is kept in a cookie over Accept-Language.
	_, _, body = c.do("GET", "/console/claims?month=2026-10", nil, map[string]string{"Accept-Language": "en"})
	if !strings.Contains(body, "已付") {
		t.Error("the lang cookie was not kept")
	}
	for header, want := range map[string]string{"": "en", "en-GB,zh;q=0.9": "en", "zh-TW": "zh", "de;q=1, zh;q=0.1": "zh", "*": "en", "zh;q=0, en;q=0.1": "en", "zh-CN;q=0": "en"} {
		if got := fromAcceptLanguage(header); got != want {
			t.Errorf("Accept-Language %q: %s, want %s", header, got, want)
		}
	}
	l := &locale{Lang: "en"}
	if got := l.Num(1234567) + " " + l.Money(-1500); got != "1,234,567 CNY -1,500" {
		t.Errorf("numbers: %s", got)
	}
}

// TestRejectedRecords: a maker's page lists its records refused at ingest in the month
// by reason, as Collector.RejectedRecords counts them; another maker's page does not.
func TestRejectedRecords(t *testing.T) {
	r := newRig(t, false)
	d := r.devs["k3"] // konka, active October 1 to 4
	rec := &proof.Record{DeviceID: d.ID(), Epoch: d.Epoch, Seq: d.Seq + 1, PrevHash: d.Prev,
		MintedAt: r.clock.now().Add(48 * time.Hour).Unix(), UptimeMS: 9000,
		Body: &proof.ActivityDay{Date: proof.NewDate(2026, time.October, 20), UTCOffsetMinutes: 480, InteractiveSeconds: 900, Unlocks: 3, ScreenOns: 4, ActiveHours: proof.AllHours}}
	raw, err := rec.Sign(d.Key)
	if err != nil {
		t.Fatal(err)
	}
	if rc, err := r.coll.Ingest([][]byte{raw}); err != nil || rc.Results[0].Reason != collector.ReasonImplausible {
		t.Fatalf("the implausible record: %+v %v", rc, err)
	}
	want, err := r.coll.RejectedRecords(october, "konka")
	if err != nil || len(want) != 1 || want[collector.ReasonImplausible] != 1 {
		t.Fatalf("RejectedRecords: %v %v", want, err)
	}
	konka := r.client()
	konka.signIn("konka")
	_, body := konka.get("/console/claims?month=2026-10&lang=en")
	for _, s := range []string{`<table id="rejected">`, `<th scope="row" data-code="implausible_mint">implausible minting time</th><td class="num" data-value="1">1</td>`,
		`<svg class="chart" id="rejected-chart" role="img" aria-labelledby="rejected-chart-title" viewBox="0 0 640 140"`} {
		if !strings.Contains(body, s) {
			t.Errorf("konka's page lacks %s", s)
		}
	}
	payer := r.client()
	payer.signIn("payer")
	if _, body := payer.get("/console/claims?month=2026-10&maker=tcl"); strings.Contains(body, `<table id="rejected">`) || !strings.Contains(body, `id="rejected-none"`) {
		t.Error("tcl's page shows rejected records")
	}
}

// TestRiskSignals: the payer's page has each maker's held keys by signal and its
// distance from the fleet, with the threshold, as the claim has them.
func TestRiskSignals(t *testing.T) {
	r := newRig(t, false)
	payer := r.client()
	payer.signIn("payer")
	_, body := payer.get("/console/payer?month=2026-10&lang=en")
	cl, err := r.coll.Claims(october)
	if err != nil {
		t.Fatal(err)
	}
	_, table, _ := strings.Cut(body, `<table id="risk">`)
	table, _, _ = strings.Cut(table, "</table>")
	for _, row := range cl.Rows {
		_, tr, ok := strings.Cut(table, `<tr data-risk-maker="`+row.MakerID+`">`)
		tr, _, _ = strings.Cut(tr, "</tr>")
		if !ok {
			t.Fatalf("no risk row for %s", row.MakerID)
		}
		for _, s := range riskSignals {
			if want := fmt.Sprintf(`data-signal="%s">%d<`, s, row.HeldReasons[s]); !strings.Contains(tr, want) {
				t.Errorf("%s: lacks %s in %s", row.MakerID, want, tr)
			}
		}
		dist := row.Distribution
		if dist == nil {
			t.Fatalf("%s: no distribution in the claim", row.MakerID)
		}
		for _, want := range []string{fmt.Sprintf(`data-dist="devices">%d<`, dist.Devices), fmt.Sprintf(`data-dist="active_days">%.2f<`, dist.ActiveDays),
			fmt.Sprintf(`data-dist="unlocks">%.2f<`, dist.Unlocks), `data-dist="threshold">0.25<`, `data-dist="flagged">no<`} {
			if !strings.Contains(tr, want) {
				t.Errorf("%s: lacks %s in %s", row.MakerID, want, tr)
			}
		}
	}
	if !strings.Contains(table, `data-signal="clone">4<`) {
		t.Errorf("tcl's four clones are not in the risk table: %s", table)
	}
}
