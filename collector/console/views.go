package console

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"time"

	"amos.example/amosd/collector"
	"amos.example/amosd/collector/claim"
	"amos.example/amosd/collector/signals"
	"amos.example/amosd/proof"
)

//go:embed templates/*.html static/*
var assets embed.FS

// MaxHeldListed bounds the held devices a page lists.
const MaxHeldListed = 500

// pages are the parsed templates, one set per page.
type pages struct{ sets map[string]*template.Template }

func parsePages() (*pages, error) {
	p := &pages{sets: map[string]*template.Template{}}
	for _, name := range []string{"signin", "claims", "device", "payer", "error"} {
		t, err := template.New(name).ParseFS(assets, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, err
		}
		p.sets[name] = t
	}
	return p, nil
}

// page is what every template is given.
type page struct {
	L       *locale
	Title   string
	CSRF    string
	Problem string
	Path    string
	Signed  bool
	Who     string // the maker_id, or "" for the payer
	Payer   bool
	Month   collector.Month
	Prev    string // month links
	Next    string
	Claim   *collector.Claims
	Rows    []rowView
	Total   rowView
	Held    []claim.Device
	More    bool
	Refused []reasonCount
	// Rejected counts the maker's records refused at ingest in the month, by reason
	// (Collector.RejectedRecords); RejectedChart draws them.
	Rejected      []reasonCount
	RejectedChart template.HTML
	Signals       []string // the signals of the payer's risk table, in its column order
	Daily         template.HTML
	Hist          template.HTML
	Device        *collector.DeviceReport
	Outcome       *claim.Device
}

// rowView is a claim row with the maker's device keys of the month.
type rowView struct {
	collector.ClaimRow
	Keys int
}

type reasonCount struct {
	Reason string
	Count  int
}

// LangURL is the current page in the other language.
func (p *page) LangURL() string {
	q := url.Values{"lang": {p.L.Other}}
	if p.Month.Year != 0 {
		q.Set("month", p.Month.String())
	}
	return p.Path + "?" + q.Encode()
}

// MonthURL links path for month s.
func (p *page) MonthURL(path, s string) string {
	q := url.Values{"month": {s}}
	if p.Payer && p.Who != "" && path == Prefix+"claims" {
		q.Set("maker", p.Who)
	}
	return path + "?" + q.Encode()
}

func (h *Handler) render(w http.ResponseWriter, status int, name string, p *page) {
	var buf bytes.Buffer
	if err := h.pages.sets[name].ExecuteTemplate(&buf, "layout", p); err != nil {
		h.fail(w, p.L, fmt.Errorf("page %s: %w", name, err))
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// problem answers status with a page saying msg.
func (h *Handler) problem(w http.ResponseWriter, r *http.Request, q *request, status int, msg string) {
	h.render(w, status, "error", h.base(r, q, msg))
}

func (h *Handler) static(w http.ResponseWriter, r *http.Request) {
	sub, _ := fs.Sub(assets, "static")
	http.StripPrefix(Prefix+"static/", http.FileServerFS(sub)).ServeHTTP(w, r)
}

// base is the page of a signed-in request.
func (h *Handler) base(r *http.Request, q *request, title string) *page {
	return &page{L: q.L, Title: title, CSRF: q.s.csrf, Path: r.URL.Path, Signed: true, Who: q.s.who.maker, Payer: q.s.who.payer}
}

// month reads the month parameter; by default the month before today in the
// reporting zone.
func (h *Handler) month(r *http.Request) (collector.Month, error) {
	if s := r.URL.Query().Get("month"); s != "" {
		return collector.ParseMonth(s)
	}
	today := proof.DateOf(h.now(), h.c.SalesZone())
	t := time.Date(today.Year(), today.Month()-1, 1, 0, 0, 0, 0, time.UTC)
	return collector.Month{Year: t.Year(), Month: t.Month()}, nil
}

// monthPage fills the month, its links and its claim.
func (h *Handler) monthPage(w http.ResponseWriter, r *http.Request, q *request, p *page) bool {
	m, err := h.month(r)
	if err != nil {
		h.problem(w, r, q, http.StatusBadRequest, err.Error())
		return false
	}
	p.Month = m
	prev := time.Date(m.Year, m.Month-1, 1, 0, 0, 0, 0, time.UTC)
	next := time.Date(m.Year, m.Month+1, 1, 0, 0, 0, 0, time.UTC)
	p.Prev, p.Next = prev.Format("2006-01"), next.Format("2006-01")
	if p.Claim, err = h.c.Claims(m); err != nil {
		h.fail(w, q.L, err)
		return false
	}
	return true
}

// charts draws the month's charts over the claim's devices of p.Claim.
func (h *Handler) charts(p *page) error {
	keep := map[proof.DeviceID]string{}
	var active []int
	for _, d := range p.Claim.Devices {
		id, err := proof.ParseHash(d.DeviceID)
		if err != nil {
			return fmt.Errorf("device_id %q of the claim: %w", d.DeviceID, err)
		}
		keep[id] = ""
		active = append(active, d.ActiveDays)
	}
	daily, err := h.c.DailyActive(p.Month, keep)
	if err != nil {
		return err
	}
	days := p.Month.Last().Day()
	perDay := daily[""]
	if perDay == nil {
		perDay = make([]int, days)
	}
	p.Daily = barChart("daily", p.L.T("daily_chart"), dayLabels(days), perDay, -1, "")
	labels := make([]string, days+1)
	for i := range labels {
		labels[i] = fmt.Sprint(i)
	}
	p.Hist = barChart("hist", p.L.T("hist_chart"), labels, histogram(active, days), h.c.MinActiveDays(), p.L.T("threshold"))
	return nil
}

// riskSignals are the device signals of docs/eligibility.md, section 8, in the order
// of the payer's risk table.
var riskSignals = []string{string(signals.Clone), string(signals.Saturated), string(signals.Burst),
	string(signals.Backfill), string(signals.Replay), string(signals.ManyKeys)}

// held returns the held devices of a claim, at most MaxHeldListed.
func held(c *collector.Claims) ([]claim.Device, bool) {
	devs := c.Select(claim.Held)
	if len(devs) > MaxHeldListed {
		return devs[:MaxHeldListed], true
	}
	return devs, false
}

// claims serves a maker's month: GET /console/claims?month=YYYY-MM; the payer names
// the maker with maker=ID.
func (h *Handler) claims(w http.ResponseWriter, r *http.Request, q *request) {
	maker := r.URL.Query().Get("maker")
	switch {
	case !q.s.who.payer && maker != "" && maker != q.s.who.maker:
		denied(w, q.L)
		return
	case !q.s.who.payer:
		maker = q.s.who.maker
	case maker == "":
		http.Redirect(w, r, Prefix+"payer?"+r.URL.RawQuery, http.StatusSeeOther)
		return
	}
	p := h.base(r, q, q.L.T("claim"))
	p.Who = maker
	if !h.monthPage(w, r, q, p) {
		return
	}
	p.Claim = p.Claim.ForMaker(maker)
	if len(p.Claim.Rows) == 0 {
		h.problem(w, r, q, http.StatusNotFound, q.L.T("forbidden"))
		return
	}
	p.Rows = []rowView{{ClaimRow: p.Claim.Rows[0], Keys: len(p.Claim.Devices)}}
	p.Held, p.More = held(p.Claim)
	for _, k := range slices.Sorted(maps.Keys(p.Claim.Rows[0].RefusedReasons)) {
		p.Refused = append(p.Refused, reasonCount{k, p.Claim.Rows[0].RefusedReasons[k]})
	}
	rejected, err := h.c.RejectedRecords(p.Month, maker)
	if err != nil {
		h.fail(w, q.L, err)
		return
	}
	var labels []string
	var values []int
	for _, k := range slices.Sorted(maps.Keys(rejected)) {
		p.Rejected = append(p.Rejected, reasonCount{string(k), rejected[k]})
		labels, values = append(labels, q.L.Reason(string(k))), append(values, rejected[k])
	}
	if len(values) > 0 {
		p.RejectedChart = barChartHigh("rejected-chart", q.L.T("rejected_by_reason"), labels, values, -1, "", shortH)
	}
	if err := h.charts(p); err != nil {
		h.fail(w, q.L, err)
		return
	}
	h.render(w, http.StatusOK, "claims", p)
}

// payerView serves GET /console/payer?month=YYYY-MM: every maker side by side, the
// review queue, the charts of all devices. Makers get 403.
func (h *Handler) payerView(w http.ResponseWriter, r *http.Request, q *request) {
	if !q.s.who.payer {
		denied(w, q.L)
		return
	}
	p := h.base(r, q, q.L.T("makers"))
	if !h.monthPage(w, r, q, p) {
		return
	}
	keys := map[string]int{}
	for _, d := range p.Claim.Devices {
		keys[d.MakerID]++
	}
	for _, row := range p.Claim.Rows {
		p.Rows = append(p.Rows, rowView{ClaimRow: row, Keys: keys[row.MakerID]})
		t := &p.Total
		t.Paid += row.Paid
		t.AmountCNY += row.AmountCNY
		t.Held += row.Held
		t.Refused += row.Refused
		t.Late += row.Late
		t.Unregistered += row.Unregistered
		t.Attested += row.Attested
		t.Keys += keys[row.MakerID]
	}
	p.Held, p.More = held(p.Claim)
	p.Signals = riskSignals
	if err := h.charts(p); err != nil {
		h.fail(w, q.L, err)
		return
	}
	h.render(w, http.StatusOK, "payer", p)
}

// device serves GET /console/devices/{id}?month=YYYY-MM: what the ledger holds of a
// device and the month's outcome; another maker's device is 404, as if absent.
func (h *Handler) device(w http.ResponseWriter, r *http.Request, q *request) {
	id, err := proof.ParseHash(r.PathValue("id"))
	if err != nil {
		h.problem(w, r, q, http.StatusNotFound, q.L.T("not_found"))
		return
	}
	d, err := h.c.Device(id)
	switch {
	case errors.Is(err, collector.ErrNotFound), err == nil && !q.s.who.payer && d.MakerID != q.s.who.maker:
		h.problem(w, r, q, http.StatusNotFound, q.L.T("not_found"))
		return
	case err != nil:
		h.fail(w, q.L, err)
		return
	}
	p := h.base(r, q, q.L.T("device"))
	if !h.monthPage(w, r, q, p) {
		return
	}
	p.Device, p.Outcome = d, p.Claim.Find(id)
	h.render(w, http.StatusOK, "device", p)
}

// decide serves POST /console/held/{id}: the payer's release or deny, through
// Collector.Decide as POST /v1/held/{id}; then back to the review queue.
func (h *Handler) decide(w http.ResponseWriter, r *http.Request, q *request) {
	if !q.s.who.payer {
		denied(w, q.L)
		return
	}
	id, err := proof.ParseHash(r.PathValue("id"))
	if err != nil {
		h.problem(w, r, q, http.StatusNotFound, q.L.T("not_found"))
		return
	}
	m, err := collector.ParseMonth(r.PostFormValue("month"))
	if err != nil {
		h.problem(w, r, q, http.StatusBadRequest, err.Error())
		return
	}
	decision := r.PostFormValue("decision")
	if decision != "release" && decision != "deny" {
		h.problem(w, r, q, http.StatusBadRequest, fmt.Sprintf("decision %q, want release or deny", decision))
		return
	}
	_, err = h.c.Decide(m, id, decision == "release", r.PostFormValue("by"), r.PostFormValue("why"))
	switch {
	case errors.Is(err, collector.ErrMonthClosed):
		h.problem(w, r, q, http.StatusConflict, q.L.T("month_closed_error"))
	case errors.Is(err, collector.ErrNotHeld):
		h.problem(w, r, q, http.StatusConflict, q.L.T("not_held_error"))
	case errors.Is(err, collector.ErrDecisionIncomplete):
		h.problem(w, r, q, http.StatusBadRequest, q.L.T("required_error"))
	case err != nil:
		h.fail(w, q.L, err)
	default:
		http.Redirect(w, r, Prefix+"payer?month="+m.String()+"#review", http.StatusSeeOther)
	}
}
