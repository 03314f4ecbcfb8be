package collector

import (
	"fmt"
	"net/url"
	"strings"
)

// LedgerURL returns the configuration's ledger key: "" for the bbolt ledger in
// data_dir, else a postgres:// or postgresql:// URL (docs/config.md). It may hold a
// password: never log it whole.
func (c *Config) LedgerURL() string { return c.Ledger }

// redacted replaces the secrets of a ledger URL in messages.
const redacted = "xxxxx"

// redactLedgerURL returns a PostgreSQL ledger URL fit for a message: its user info and
// the value of every parameter whose name holds "password" replaced by xxxxx, the rest
// kept. A value that is not a postgres:// or postgresql:// URL, or that has a fragment
// (where a # in a password would leave part of it), is not shown at all.
func redactLedgerURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") || u.Opaque != "" || strings.Contains(s, "#") {
		return "(not shown)"
	}
	if u.User != nil {
		u.User = url.User(redacted)
	}
	q, _ := url.ParseQuery(u.RawQuery) // a malformed pair is dropped, not shown
	for k := range q {
		if strings.Contains(strings.ToLower(k), "password") {
			q[k] = []string{redacted}
		}
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// validateLedger checks the ledger key: empty, or a postgres:// or postgresql:// URL
// with a host or a host= parameter. Messages never show the password.
func validateLedger(s string) *ConfigError {
	bad := func(format string, args ...any) *ConfigError {
		return &ConfigError{Key: "ledger", Problem: fmt.Sprintf(format, args...), Kind: ErrConfig}
	}
	if s == "" {
		return nil
	}
	const hidden = "(the value is not shown: it may hold a password)"
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return bad("not a URL %s; reserved characters in the user or password must be percent-encoded", hidden)
	case u.Scheme != "postgres" && u.Scheme != "postgresql" || u.Opaque != "":
		return bad(`want "" (the bbolt ledger in data_dir) or a postgres:// or postgresql:// URL %s`, hidden)
	case strings.Contains(s, "#"):
		return bad("the URL has a fragment (#) %s; a # in a password must be written %%23", hidden)
	case u.User == nil && strings.Contains(u.Path+u.RawQuery, "@"):
		// postgres://amos:123/456@db/amos: the password's / ended the host early.
		return bad("an @ after the host %s; a / or ? in the user or password must be written %%2F or %%3F", hidden)
	}
	if q, _ := url.ParseQuery(u.RawQuery); u.Host == "" && q.Get("host") == "" {
		return bad("%q names no host: give one after // or as a host= parameter", redactLedgerURL(s))
	}
	return nil
}
