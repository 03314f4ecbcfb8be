package httpapi

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"

	"amos.example/amosd/collector"
	"amos.example/amosd/collector/claim"
	"amos.example/amosd/collector/sales"
	"amos.example/amosd/proof"
)

// MaxRegistryBody bounds a POST /v1/registry body.
const MaxRegistryBody = 256 << 20

// payerOnly authenticates and answers 403 to a maker.
func (h *Handler) payerOnly(w http.ResponseWriter, r *http.Request) bool {
	p, ok := h.authenticate(w, r)
	if ok && !p.payer {
		writeError(w, http.StatusForbidden, "only the payer may do this")
		return false
	}
	return ok
}

// claimDevices serves GET /v1/claims/devices?month=M[&outcome=O][&format=csv]: every
// device key with an accepted day in the month and what the claim made of it. A maker
// sees its own devices only.
func (h *Handler) claimDevices(w http.ResponseWriter, r *http.Request) {
	out := claim.Outcome(r.URL.Query().Get("outcome"))
	switch out {
	case "", claim.Paid, claim.Held, claim.Refused, claim.Unregistered, claim.Ineligible:
	default:
		if _, ok := h.authenticate(w, r); ok {
			writeError(w, http.StatusBadRequest, "outcome %q, want paid, held, refused, unregistered or ineligible", out)
		}
		return
	}
	c, format, ok := h.viewClaim(w, r)
	if !ok {
		return
	}
	devs := c.Select(out)
	if format == "csv" {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		c.WriteDevicesCSV(w, devs)
		return
	}
	if devs == nil {
		devs = []claim.Device{}
	}
	writeJSON(w, http.StatusOK, struct {
		Month    string         `json:"month"`
		Status   string         `json:"status"`
		ClosedAt int64          `json:"closed_at,omitempty"`
		Devices  []claim.Device `json:"devices"`
	}{c.Month, c.Status, c.ClosedAt, devs})
}

// registry serves POST /v1/registry: the payer imports sold handsets, as
// `amos-collector registry import` does. The body is CSV (text/csv) or JSON
// (application/json); the import is all or nothing.
func (h *Handler) registry(w http.ResponseWriter, r *http.Request) {
	if !h.payerOnly(w, r) {
		return
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || (mt != "text/csv" && mt != "application/json") {
		writeError(w, http.StatusUnsupportedMediaType, "Content-Type %q, want text/csv or application/json", r.Header.Get("Content-Type"))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxRegistryBody))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, "body: %v", err)
		return
	}
	if mt == "application/json" && !strings.HasPrefix(strings.TrimSpace(string(body[:min(len(body), 64)])), "[") && !strings.HasPrefix(strings.TrimSpace(string(body[:min(len(body), 64)])), "{") {
		writeError(w, http.StatusBadRequest, "body: application/json but not a JSON array or object")
		return
	}
	rows, err := sales.Parse("request body", body, h.c.SalesZone())
	if err == nil {
		var res collector.ImportResult
		res, err = h.c.ImportSales("request body", rows)
		if err == nil {
			writeJSON(w, http.StatusOK, res)
			return
		}
	}
	if errors.Is(err, sales.ErrBadRow) {
		writeError(w, http.StatusBadRequest, "%v (nothing of the import was applied)", err)
		return
	}
	h.m.ledgerError(opRegistry)
	h.logf("amos-collector: POST /v1/registry: %v", err)
	writeError(w, http.StatusInternalServerError, "the import could not be stored; nothing of it was applied")
}

// decisionRequest is the body of POST /v1/held/{device_id}.
type decisionRequest struct {
	Month    string `json:"month"`
	Decision string `json:"decision"` // release or deny
	By       string `json:"by"`
	Why      string `json:"why"`
}

// decide serves POST /v1/held/{device_id}: the payer releases or denies a held device.
func (h *Handler) decide(w http.ResponseWriter, r *http.Request) {
	if !h.payerOnly(w, r) {
		return
	}
	id, err := proof.ParseHash(r.PathValue("id"))
	if err != nil {
		writeError(w, http.StatusBadRequest, "device_id %q: want 64 hex digits", r.PathValue("id"))
		return
	}
	var req decisionRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 16<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "body: %v; want {\"month\",\"decision\",\"by\",\"why\"}", err)
		return
	}
	m, err := collector.ParseMonth(req.Month)
	if err != nil {
		writeError(w, http.StatusBadRequest, "%v", err)
		return
	}
	if req.Decision != "release" && req.Decision != "deny" {
		writeError(w, http.StatusBadRequest, "decision %q, want release or deny", req.Decision)
		return
	}
	d, err := h.c.Decide(m, id, req.Decision == "release", req.By, req.Why)
	switch {
	case errors.Is(err, collector.ErrMonthClosed), errors.Is(err, collector.ErrNotHeld):
		writeError(w, http.StatusConflict, "%v", err)
	case err != nil && strings.Contains(err.Error(), "required"):
		writeError(w, http.StatusBadRequest, "%v", err)
	case err != nil:
		h.m.ledgerError(opDecide)
		h.logf("amos-collector: POST /v1/held/%s: %v", id, err)
		writeError(w, http.StatusInternalServerError, "the decision could not be stored")
	default:
		writeJSON(w, http.StatusOK, d)
	}
}

// decisions serves GET /v1/decisions?month=M: the payer's audit trail of a month.
func (h *Handler) decisions(w http.ResponseWriter, r *http.Request) {
	if !h.payerOnly(w, r) {
		return
	}
	m, err := collector.ParseMonth(r.URL.Query().Get("month"))
	if err != nil {
		writeError(w, http.StatusBadRequest, "%v", err)
		return
	}
	ds, err := h.c.Decisions(m)
	if err != nil {
		h.m.ledgerError(opDecisions)
		h.logf("amos-collector: GET /v1/decisions: %v", err)
		writeError(w, http.StatusInternalServerError, "decisions of %s could not be read", m)
		return
	}
	type entry struct {
		DeviceID string `json:"device_id"`
		claim.Decision
	}
	out := []entry{}
	for _, d := range ds {
		e := entry{DeviceID: d.DeviceID.String(), Decision: claim.Decision{Decision: "deny", At: d.At, By: d.By, Why: d.Why}}
		if d.Release {
			e.Decision.Decision = "release"
		}
		out = append(out, e)
	}
	writeJSON(w, http.StatusOK, struct {
		Month     string  `json:"month"`
		Decisions []entry `json:"decisions"`
	}{m.String(), out})
}
