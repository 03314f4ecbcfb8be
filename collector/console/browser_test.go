package console

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromium returns the path of a Chromium binary. Without one the browser tests skip,
// naming it, unless CI or AMOS_REQUIRE_CHROMIUM is set: then they fail.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	const msg = "no chromium binary on PATH (Debian: apt-get install chromium; scripts/ensure-tools.sh installs it)"
	if os.Getenv("CI") != "" || os.Getenv("AMOS_REQUIRE_CHROMIUM") != "" {
		t.Fatal(msg + "; CI or AMOS_REQUIRE_CHROMIUM is set, so the browser tests must run")
	}
	t.Skip(msg)
	return ""
}

// browser is a headless Chromium tab, closed when the test ends; the whole browser
// lives at most three minutes.
type browser struct {
	t   *testing.T
	ctx context.Context
	out string // where screenshots go
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	path := chromium(t)
	root, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox,
		chromedp.UserDataDir(t.TempDir()), chromedp.Headless, chromedp.WindowSize(1200, 900))
	actx, cancelAlloc := chromedp.NewExecAllocator(root, opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancelCtx := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(cancelCtx)
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("starting %s: %v", path, err)
	}
	return &browser{t: t, ctx: ctx, out: screenshotDir(t)}
}

// screenshotDir returns out/console/ at the top of the module, made if missing.
func screenshotDir(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
	out := filepath.Join(dir, "out", "console")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	return out
}

// do runs actions, each step bounded to 30 seconds.
func (b *browser) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

// eval evaluates a JavaScript expression on the page.
func eval[T any](b *browser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("%s: %v", expr, err)
	}
	return v
}

func (b *browser) screenshot(name string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(b.out, name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// signIn types the token into the form and submits it with the Enter key.
func (b *browser) signIn(base, token string) {
	b.t.Helper()
	b.do("sign in",
		chromedp.Navigate(base+"/console/"),
		chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), token+"\r"),
		chromedp.WaitVisible(chromedp.CSS("#state")))
	if loc := eval[string](b, `location.href`); strings.Contains(loc, token) {
		b.t.Errorf("the token is in the URL %s", loc)
	}
}

// accessible checks what the page must have without a tool: a label for every input,
// a scope on every table header, a name for every chart, and no script at all.
func (b *browser) accessible(page string) {
	b.t.Helper()
	for what, expr := range map[string]string{
		"inputs without a label":        `[...document.querySelectorAll('input:not([type=hidden])')].filter(i => !i.labels || i.labels.length == 0).length`,
		"table headers without a scope": `document.querySelectorAll('th:not([scope])').length`,
		"charts without a name":         `[...document.querySelectorAll('svg')].filter(s => s.getAttribute('role') != 'img' || !document.getElementById(s.getAttribute('aria-labelledby'))).length`,
		"scripts":                       `document.scripts.length`,
	} {
		if n := eval[int](b, expr); n != 0 {
			b.t.Errorf("%s: %d %s", page, n, what)
		}
	}
}

// pageRows reads the claim rows of the page, maker → field → text.
const pageRows = `Object.fromEntries([...document.querySelectorAll('tr[data-maker], table#row tbody tr')].map(tr =>
	[tr.dataset.maker || '', Object.fromEntries([...tr.querySelectorAll('[data-field]')].map(td => [td.dataset.field, td.textContent]))]))`

// wantActive is the rig's active device keys on each date of October, of the makers given.
func wantActive(makers ...string) []int {
	plans := map[string][]int{"konka": {20, 14, 4, 15}, "tcl": {12, 31, 31, 31, 31}}
	out := make([]int, 31)
	for _, m := range makers {
		for _, days := range plans[m] {
			for d := range days {
				out[d]++
			}
		}
	}
	return out
}

// bars returns the values of a chart's bars.
func bars(b *browser, chart string) []int {
	b.t.Helper()
	return eval[[]int](b, `[...document.querySelectorAll('#`+chart+` rect.bar')].map(r => +r.dataset.value)`)
}

func TestBrowser(t *testing.T) {
	b := newBrowser(t) // first: it skips without Chromium
	r := newRig(t, false)
	base := r.srv.URL

	// The payer: every maker's row equals the claim, the charts have a bar a day and
	// a bar per count of active days, and the review queue releases a held device.
	b.signIn(base, tokens["payer"])
	b.do("payer page", chromedp.Navigate(base+"/console/payer?month=2026-10&lang=en"), chromedp.WaitVisible(chromedp.CSS("#rows")))
	checkBrowserRows(t, r, b, "")
	if got, want := bars(b, "daily"), wantActive("konka", "tcl"); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("daily chart %v, want %v", got, want)
	}
	hist := bars(b, "hist")
	cl, err := r.coll.Claims(october)
	if err != nil {
		t.Fatal(err)
	}
	sum := 0
	for _, v := range hist {
		sum += v
	}
	if len(hist) != 32 || sum != len(cl.Devices) || hist[31] != 4 || hist[4] != 1 {
		t.Errorf("histogram %v, %d device keys", hist, len(cl.Devices))
	}
	if n := eval[int](b, `document.querySelectorAll('#hist line.threshold').length`); n != 1 {
		t.Errorf("%d threshold lines", n)
	}
	b.accessible("payer page")
	b.screenshot("payer")

	// A review form whose CSRF field was taken out is refused, and nothing recorded.
	f1 := r.devs["f1"].ID().String()
	eval[bool](b, `(() => {
		const f = document.querySelector('form[action="/console/held/`+f1+`"]');
		f.querySelector('input[name=csrf]').remove();
		f.querySelector('[name=by]').value = 'li';
		f.querySelector('[name=why]').value = 'no token';
		f.querySelector('button[value=release]').click();
		return true;
	})()`)
	b.do("a decision without its CSRF token", chromedp.WaitVisible(chromedp.CSS("pre"))) // the plain-text 403
	if text := eval[string](b, `document.body.innerText`); !strings.Contains(text, "CSRF") {
		t.Errorf("a decision without its CSRF token answered %q", text)
	}
	if ds, err := r.coll.Decisions(october); err != nil || len(ds) != 0 {
		t.Fatalf("a decision without its CSRF token recorded %+v %v", ds, err)
	}
	b.do("payer page again", chromedp.Navigate(base+"/console/payer?month=2026-10&lang=en"), chromedp.WaitVisible(chromedp.CSS("#rows")))

	f0 := r.devs["f0"].ID().String()
	form := `form[action="/console/held/` + f0 + `"]`
	b.do("release a held device",
		chromedp.SendKeys(chromedp.CSS("#by-"+f0), "li"),
		chromedp.SendKeys(chromedp.CSS("#why-"+f0), "the shop showed the receipts"),
		chromedp.Click(chromedp.CSS(form+` button[value="release"]`)),
		chromedp.WaitNotPresent(chromedp.CSS(form)),
		chromedp.WaitVisible(chromedp.CSS("#rows")))
	ds, err := r.coll.Decisions(october)
	if err != nil || len(ds) != 1 || !ds[0].Release || ds[0].By != "li" || ds[0].Why != "the shop showed the receipts" {
		t.Fatalf("decisions %+v %v", ds, err)
	}
	checkBrowserRows(t, r, b, "")
	b.screenshot("payer-after-release")

	b.do("sign out", chromedp.Click(chromedp.CSS("#signout")), chromedp.WaitVisible(chromedp.CSS("#token")))
	b.do("payer page after sign-out", chromedp.Navigate(base+"/console/payer?month=2026-10"), chromedp.WaitVisible(chromedp.CSS("#token")))

	// A maker: its own row, its own charts; not the payer's page nor another's device.
	b.signIn(base, tokens["konka"])
	b.do("konka's claim", chromedp.Navigate(base+"/console/claims?month=2026-10"), chromedp.WaitVisible(chromedp.CSS("#row")))
	checkBrowserRows(t, r, b, "konka")
	if got, want := bars(b, "daily"), wantActive("konka"); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("konka's daily chart %v, want %v", got, want)
	}
	b.accessible("maker page")
	b.screenshot("maker")
	b.do("konka's page in Chinese", chromedp.Navigate(base+"/console/claims?month=2026-10&lang=zh"), chromedp.WaitVisible(chromedp.CSS("#row")))
	if got := eval[string](b, `document.querySelector('#month').textContent + ' ' + document.querySelector('[data-field=amount_cny]').textContent`); got != "2026年10月 2 元" {
		t.Errorf("Chinese page: %q", got)
	}
	b.screenshot("maker-zh")
	b.do("the payer's page as konka", chromedp.Navigate(base+"/console/payer?month=2026-10&lang=en"), chromedp.WaitVisible(chromedp.CSS("body")))
	if got := eval[string](b, `document.body.textContent`); !strings.Contains(got, "Not yours to see.") || strings.Contains(got, "tcl") {
		t.Errorf("the payer's page as konka: %q", got)
	}
	b.do("tcl's device as konka", chromedp.Navigate(base+"/console/devices/"+f0+"?month=2026-10"), chromedp.WaitVisible(chromedp.CSS("h1")))
	if got := eval[string](b, `document.querySelector('h1').textContent`); got != "No such device." {
		t.Errorf("tcl's device as konka: %q", got)
	}
	k1 := r.devs["k1"].ID().String()
	b.do("konka's device", chromedp.Navigate(base+"/console/devices/"+k1+"?month=2026-10"), chromedp.WaitVisible(chromedp.CSS("#epochs")))
	if got := eval[string](b, `document.querySelector('#outcome').textContent`); !strings.HasPrefix(got, "Paid") || !strings.Contains(got, "20") {
		t.Errorf("konka's device outcome %q", got)
	}
	b.accessible("device page")
	b.screenshot("device")
	b.do("sign out", chromedp.Click(chromedp.CSS("#signout")), chromedp.WaitVisible(chromedp.CSS("#token")))
	noTokens(t, r, "browser test")
}

// checkBrowserRows compares the rows on the page with Collector.Claims (for maker, or
// every maker when maker is "").
func checkBrowserRows(t *testing.T, r *rig, b *browser, maker string) {
	t.Helper()
	cl, err := r.coll.Claims(october)
	if err != nil {
		t.Fatal(err)
	}
	if maker != "" {
		cl = cl.ForMaker(maker)
	}
	got := eval[map[string]map[string]string](b, pageRows)
	if len(got) != len(cl.Rows) {
		t.Fatalf("%d rows on the page, %d in the claim: %v", len(got), len(cl.Rows), got)
	}
	for _, row := range cl.Rows {
		key := row.MakerID
		if maker != "" {
			key = ""
		}
		want := map[string]string{"paid": strconv.Itoa(row.Paid), "held": strconv.Itoa(row.Held), "refused": strconv.Itoa(row.Refused),
			"late": strconv.Itoa(row.Late), "unregistered": strconv.Itoa(row.Unregistered), "amount_cny": "CNY " + strconv.Itoa(row.AmountCNY)}
		for k, v := range want {
			if got[key][k] != v {
				t.Errorf("%s %s: page %q, claim %q", row.MakerID, k, got[key][k], v)
			}
		}
	}
}
