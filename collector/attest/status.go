package attest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"time"
	"unicode/utf8"
)

// ErrStatusList: the bytes are not a status list in Google's format.
var ErrStatusList = errors.New("attest: bad status list")

// The statuses and reasons of Google's format
// (developer.android.com/privacy-and-security/security-key-attestation#certificate_status).
const (
	StatusRevoked   = "REVOKED"
	StatusSuspended = "SUSPENDED"
)

var validReasons = map[string]bool{"UNSPECIFIED": true, "KEY_COMPROMISE": true, "CA_COMPROMISE": true, "SUPERSEDED": true, "SOFTWARE_FLAW": true}

// maxComment is the schema's maxLength of a comment, in characters.
const maxComment = 140

// StatusEntry is the status of one certificate serial.
type StatusEntry struct {
	Status  string    // StatusRevoked or StatusSuspended
	Reason  string    // "" or one of the schema's reasons
	Expires time.Time // zero when absent; the date (UTC midnight) the certificate expires
	Comment string
}

// StatusList is a parsed revocation status list: certificate serial (lowercase hex, no
// leading zero) to status. Both statuses refuse a chain.
type StatusList struct {
	entries map[string]StatusEntry
}

// Len is the number of entries.
func (l *StatusList) Len() int {
	if l == nil {
		return 0
	}
	return len(l.entries)
}

// SerialKey is how a status list names a certificate serial: lowercase hex without
// leading zeros, as Java's BigInteger.toString(16) and Google's verifier write it (the
// schema's key pattern is ^[a-f1-9][a-f0-9]*$). A negative serial (not DER, but parsed
// by crypto/x509) gets a leading "-" and never matches.
func SerialKey(serial *big.Int) string {
	if serial == nil {
		return ""
	}
	return serial.Text(16)
}

// Lookup is the entry of serial, if listed.
func (l *StatusList) Lookup(serial *big.Int) (StatusEntry, bool) {
	if l == nil || serial == nil {
		return StatusEntry{}, false
	}
	e, ok := l.entries[SerialKey(serial)]
	return e, ok
}

type statusEntryJSON struct {
	Status  *string `json:"status"`
	Reason  *string `json:"reason"`
	Expires *string `json:"expires"`
	Comment *string `json:"comment"`
}

// ParseStatusList reads a status list strictly to the published JSON schema: one object
// with exactly the member "entries", an object whose names are serials
// (^[a-f1-9][a-f0-9]*$) and whose values have "status" (REVOKED or SUSPENDED) and
// optionally "reason" (one of the schema's), "expires" (YYYY-MM-DD) and "comment" (at
// most 140 characters), nothing else; no name twice, nothing after the object.
func ParseStatusList(data []byte) (*StatusList, error) {
	if err := noDuplicateNames(data); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrStatusList, err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var doc struct {
		Entries map[string]statusEntryJSON `json:"entries"`
	}
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrStatusList, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: data after the JSON object", ErrStatusList)
	}
	if doc.Entries == nil {
		return nil, fmt.Errorf("%w: no \"entries\" object", ErrStatusList)
	}
	l := &StatusList{entries: make(map[string]StatusEntry, len(doc.Entries))}
	for serial, raw := range doc.Entries {
		e, err := checkEntry(serial, raw)
		if err != nil {
			return nil, fmt.Errorf("%w: entry %q: %w", ErrStatusList, serial, err)
		}
		l.entries[serial] = e
	}
	return l, nil
}

func checkEntry(serial string, raw statusEntryJSON) (StatusEntry, error) {
	if !validSerialKey(serial) {
		return StatusEntry{}, errors.New("the serial is not lowercase hex without leading zero")
	}
	if raw.Status == nil {
		return StatusEntry{}, errors.New("no status")
	}
	e := StatusEntry{Status: *raw.Status}
	if e.Status != StatusRevoked && e.Status != StatusSuspended {
		return StatusEntry{}, fmt.Errorf("status %q is neither %s nor %s", e.Status, StatusRevoked, StatusSuspended)
	}
	if raw.Reason != nil {
		if !validReasons[*raw.Reason] {
			return StatusEntry{}, fmt.Errorf("unknown reason %q", *raw.Reason)
		}
		e.Reason = *raw.Reason
	}
	if raw.Expires != nil {
		t, err := time.Parse(time.DateOnly, *raw.Expires)
		if err != nil || t.Format(time.DateOnly) != *raw.Expires {
			return StatusEntry{}, fmt.Errorf("expires %q is not a YYYY-MM-DD date", *raw.Expires)
		}
		e.Expires = t
	}
	if raw.Comment != nil {
		if n := utf8.RuneCountInString(*raw.Comment); n > maxComment {
			return StatusEntry{}, fmt.Errorf("comment of %d characters, over %d", n, maxComment)
		}
		e.Comment = *raw.Comment
	}
	return e, nil
}

// validSerialKey is the schema's ^[a-f1-9][a-f0-9]*$.
func validSerialKey(s string) bool {
	if s == "" || s[0] == '0' {
		return false
	}
	for _, c := range []byte(s) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// noDuplicateNames walks the JSON tokens and refuses an object with a member name
// twice, at any depth (encoding/json would silently keep the last).
func noDuplicateNames(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	type frame struct {
		object bool
		names  map[string]bool
		key    bool // the next token of this object is a name
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if name, ok := tok.(string); ok && top != nil && top.object && top.key {
			if top.names[name] {
				return fmt.Errorf("member %q twice in one object", name)
			}
			top.names[name] = true
			top.key = false
			continue
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{object: true, names: map[string]bool{}, key: true})
			continue
		case json.Delim('['):
			stack = append(stack, &frame{})
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
		if len(stack) > 0 && stack[len(stack)-1].object {
			stack[len(stack)-1].key = true // a value ended: a name or '}' follows
		}
	}
}
