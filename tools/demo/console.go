package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"time"

	"amos.example/amosd/collector"
	"amos.example/amosd/internal/devpki"
)

var (
	csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
	paidCell  = regexp.MustCompile(`(?s)<tr data-maker="([^"]+)">.*?data-field="paid">([^<]*)<`)
)

// checkConsole signs in to the collector's web console with the payer's token, as a
// browser without JavaScript does (the sign-in form's CSRF token, the session cookie),
// and checks that the payer's page of month m shows every maker's paid devices as
// claims has them: the console the guide invites the reader to open works.
func checkConsole(ctx context.Context, base, caFile, token string, m collector.Month, claims *collector.Claims) error {
	pool, err := devpki.LoadPool(caFile)
	if err != nil {
		return err
	}
	jar, err := cookiejar.New(nil)
	if err != nil {
		return err
	}
	hc := &http.Client{Jar: jar, Timeout: 30 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	defer hc.CloseIdleConnections()
	do := func(method, path string, form url.Values) (string, error) {
		var body io.Reader
		if form != nil {
			body = strings.NewReader(form.Encode())
		}
		req, err := http.NewRequestWithContext(ctx, method, base+path, body)
		if err != nil {
			return "", err
		}
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		resp, err := hc.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("%s %s: %s", method, path, resp.Status)
		}
		return string(b), err
	}
	page, err := do(http.MethodGet, "/console/signin", nil)
	if err != nil {
		return fmt.Errorf("console: %w", err)
	}
	tok := csrfField.FindStringSubmatch(page)
	if tok == nil {
		return fmt.Errorf("console: the sign-in form has no CSRF field")
	}
	// The redirects end on the payer's page of the default month.
	if _, err := do(http.MethodPost, "/console/signin", url.Values{"csrf": {tok[1]}, "token": {token}}); err != nil {
		return fmt.Errorf("console: signing in as the payer: %w", err)
	}
	page, err = do(http.MethodGet, "/console/payer?lang=en&month="+m.String(), nil)
	if err != nil {
		return fmt.Errorf("console: %w", err)
	}
	shown := map[string]string{}
	for _, row := range paidCell.FindAllStringSubmatch(page, -1) {
		shown[row[1]] = strings.ReplaceAll(row[2], ",", "")
	}
	for _, row := range claims.Rows {
		if got := shown[row.MakerID]; got != fmt.Sprint(row.Paid) {
			return fmt.Errorf("console: the payer's page of %s shows %q paid for %s, GET /v1/claims %d", m, got, row.MakerID, row.Paid)
		}
	}
	if len(shown) != len(claims.Rows) {
		return fmt.Errorf("console: the payer's page of %s has %d makers, GET /v1/claims %d", m, len(shown), len(claims.Rows))
	}
	return nil
}
