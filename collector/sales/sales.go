// Package sales parses and checks the payer's sales registry imports (docs/operations.md): which handset, by serial tag, was sold by which maker, when and through which channel.
package sales

import (
	"bytes"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"amos.example/amosd/proof"
)

// ErrBadRow is wrapped by every refusal of an import file.
var ErrBadRow = errors.New("sales: bad row")

// MaxRows is the most data rows an import file may hold.
const MaxRows = 10_000_000

// columns returns the columns of a CSV file, in the order Format writes them, which are also
// the keys of a JSON object.
func columns() []string { return []string{"serial_tag", "maker_id", "sold_at", "channel"} }

// Sale is one sold handset.
type Sale struct {
	SerialTag [32]byte
	MakerID   string
	SoldAt    proof.Date // the date of sale in the reporting zone
	Channel   string
}

// Row is a sale and the line of the file it came from (1-based; for CSV the header is line 1).
type Row struct {
	Line int
	Sale
}

// RowError names the file, the line, the field and the problem; it wraps ErrBadRow.
type RowError struct {
	File    string
	Line    int    // 0 when the whole file is at fault (empty, not CSV/JSON, missing header)
	Field   string // "serial_tag", "maker_id", "sold_at", "channel", or "" for the row/file
	Value   string // the offending value, quoted in Error(); may be ""
	Problem string
}

// Error renders e as `FILE line N: FIELD "VALUE": PROBLEM`, leaving out the empty parts; a
// long value is shortened.
func (e *RowError) Error() string {
	s, v := e.File, e.Value
	if e.Line > 0 {
		s += fmt.Sprintf(" line %d", e.Line)
	}
	if len(v) > 80 {
		v = v[:80] + "..."
	}
	if v != "" {
		v = strconv.Quote(v)
	}
	if where := strings.TrimSpace(e.Field + " " + v); where != "" {
		s += ": " + where
	}
	return s + ": " + e.Problem
}

// Unwrap returns ErrBadRow.
func (e *RowError) Unwrap() error { return ErrBadRow }

// Parse reads an import file named name (the name is only used in errors).
//
// The format is JSON when the first non-blank byte is '[' or '{' (an array of objects, or an
// object {"sales":[...]}), else CSV. A UTF-8 byte order mark at the start is ignored.
//
//   - CSV (RFC 4180 quoting, as encoding/csv reads it): the first line is a header naming
//     exactly the four columns serial_tag,maker_id,sold_at,channel in any order
//     (case-sensitive, surrounding spaces trimmed); an unknown, repeated or missing column is
//     refused on the header's line, and a first line naming none of them is refused as a
//     missing header (line 0). Every row has four fields, taken as they are (not trimmed).
//     Empty lines are skipped; line numbers are the real lines of the file.
//   - JSON: objects with exactly the keys serial_tag, maker_id, sold_at, channel, each once,
//     all strings; an unknown or missing key is refused. The line of a row is the line where
//     its object starts. Data after the top-level value is refused.
//   - serial_tag: exactly 64 hex digits (either case), decoded to 32 bytes; all zeros refused.
//   - maker_id: a maker_id of docs/protocol.md, [a-z0-9-]{1,32} (proof.ValidMakerID).
//   - sold_at: "YYYY-MM-DD", a real calendar date in the years 2000..9999, or an RFC 3339
//     time, whose date of sale is its date in the reporting zone zoneOffsetMinutes east of
//     UTC (proof.DateOf), again in the years 2000..9999.
//   - channel: 1..64 characters of [A-Za-z0-9._-].
//   - An empty file, or one with no rows (a CSV header alone, an empty JSON array), is refused
//     at line 0 with "no rows"; a file of more than MaxRows rows is refused.
//   - Rows identical after parsing (same serial_tag and same fields) are kept once, at the
//     first line; the same serial_tag twice with different fields is refused, naming both
//     lines.
//
// The whole file is refused at the first bad row: the error is then a *RowError, wrapping
// ErrBadRow. The rows are returned in file order. A zoneOffsetMinutes outside
// proof.MinUTCOffsetMinutes..proof.MaxUTCOffsetMinutes is an error of the caller, not a
// *RowError.
func Parse(name string, b []byte, zoneOffsetMinutes int) ([]Row, error) {
	return parse(name, b, zoneOffsetMinutes, MaxRows)
}

func parse(name string, b []byte, zoneOffsetMinutes, maxRows int) ([]Row, error) {
	if zoneOffsetMinutes < proof.MinUTCOffsetMinutes || zoneOffsetMinutes > proof.MaxUTCOffsetMinutes {
		return nil, fmt.Errorf("sales: zone offset %d minutes outside %d..%d", zoneOffsetMinutes,
			proof.MinUTCOffsetMinutes, proof.MaxUTCOffsetMinutes)
	}
	b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf"))
	c := &collector{name: name, zone: zoneOffsetMinutes, max: maxRows, seen: map[[32]byte]int{}}
	var err error
	if t := bytes.TrimLeft(b, " \t\r\n"); len(t) > 0 && (t[0] == '[' || t[0] == '{') {
		err = c.parseJSON(b)
	} else {
		err = c.parseCSV(b)
	}
	if err == nil && len(c.rows) == 0 {
		err = c.fail(0, "", "", "no rows")
	}
	if err != nil {
		return nil, err
	}
	return c.rows, nil
}

// collector checks rows and gathers them, dropping identical duplicates.
type collector struct {
	name             string
	zone, max, count int
	rows             []Row
	seen             map[[32]byte]int // serial tag -> index in rows
}

func (c *collector) fail(line int, field, value, problem string) error {
	return &RowError{File: c.name, Line: line, Field: field, Value: value, Problem: problem}
}

// add checks the raw fields of the row on line, in column order, and keeps the sale.
func (c *collector) add(line int, f [4]string) error {
	if c.count++; c.count > c.max {
		return c.fail(line, "", "", fmt.Sprintf("more than %d rows", c.max))
	}
	s, k, problem := check(f, c.zone)
	if problem != "" {
		return c.fail(line, columns()[k], f[k], problem)
	}
	if i, ok := c.seen[s.SerialTag]; ok {
		if c.rows[i].Sale == s {
			return nil
		}
		return c.fail(line, columns()[0], f[0],
			fmt.Sprintf("also on line %d with other fields", c.rows[i].Line))
	}
	c.seen[s.SerialTag] = len(c.rows)
	c.rows = append(c.rows, Row{Line: line, Sale: s})
	return nil
}

// check returns the sale of the raw fields f, in column order, or the index of the first bad
// field and its problem.
func check(f [4]string, zone int) (s Sale, bad int, problem string) {
	t, err := hex.DecodeString(f[0])
	if err != nil || len(t) != 32 {
		return s, 0, "not 64 hex digits"
	}
	copy(s.SerialTag[:], t)
	if s.SerialTag == ([32]byte{}) {
		return s, 0, "all zeros"
	}
	if s.MakerID = f[1]; !proof.ValidMakerID(s.MakerID) {
		return s, 1, "not [a-z0-9-]{1,32}"
	}
	if s.SoldAt, problem = parseSoldAt(f[2], zone); problem != "" {
		return s, 2, problem
	}
	if s.Channel = f[3]; !validChannel(s.Channel) {
		return s, 3, "not 1..64 characters of [A-Za-z0-9._-]"
	}
	return s, 0, ""
}

// parseSoldAt returns the date of sale of v, or why v is not one.
func parseSoldAt(v string, zone int) (proof.Date, string) {
	layout := time.RFC3339Nano
	if len(v) == len(time.DateOnly) {
		layout = time.DateOnly // strict: 4-digit year, 2-digit month and day, a real date
	}
	t, err := time.Parse(layout, v)
	if err != nil {
		return 0, "not a date YYYY-MM-DD or an RFC 3339 time"
	}
	d := proof.NewDate(t.Year(), t.Month(), t.Day())
	if layout != time.DateOnly {
		d = proof.DateOf(t, zone)
	}
	if d.Year() < 2000 || d.Year() > 9999 {
		return 0, fmt.Sprintf("date of sale %s outside the years 2000..9999", d)
	}
	return d, ""
}

func validChannel(s string) bool {
	const chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-"
	return len(s) >= 1 && len(s) <= 64 && strings.Trim(s, chars) == ""
}

// parseCSV reads a CSV file: the header, then the rows.
func (c *collector) parseCSV(b []byte) error {
	r := csv.NewReader(bytes.NewReader(b))
	r.FieldsPerRecord = 0 // set by the header, then enforced
	r.ReuseRecord = true
	var order [4]int // order[k] is the record index of columns()[k]
	for header := true; ; header = false {
		rec, err := r.Read()
		if err == io.EOF {
			return nil
		}
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			problem := pe.Err.Error()
			if pe.Line != pe.StartLine {
				problem += fmt.Sprintf(" (line %d column %d)", pe.Line, pe.Column)
			}
			return c.fail(pe.StartLine, "", "", problem)
		} else if err != nil {
			return c.fail(0, "", "", err.Error())
		}
		line, _ := r.FieldPos(0)
		if header {
			if err := c.header(line, rec, &order); err != nil {
				return err
			}
			continue
		}
		var f [4]string
		for k, i := range order {
			f[k] = rec[i]
		}
		if err := c.add(line, f); err != nil {
			return err
		}
	}
}

// header checks the CSV header rec on line and sets order.
func (c *collector) header(line int, rec []string, order *[4]int) error {
	const want = "; the header must name exactly serial_tag,maker_id,sold_at,channel"
	var found [4]bool
	problem, value := "", ""
	for i, name := range rec {
		name = strings.TrimSpace(name)
		switch k := slices.Index(columns(), name); {
		case k >= 0 && !found[k]:
			found[k], order[k] = true, i
		case problem == "":
			problem, value = "unknown or repeated column", name
		}
	}
	for k := range found {
		if problem == "" && !found[k] {
			problem, value = "missing column", columns()[k]
		}
	}
	switch {
	case found == [4]bool{}:
		return c.fail(0, "", "", "no header"+want)
	case problem != "":
		return c.fail(line, "", value, problem+want)
	}
	return nil
}

// Format renders sales as CSV with the header, in the given order (for exports and tests).
// It refuses a sale that Parse would refuse.
func Format(w io.Writer, sales []Sale) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(columns()); err != nil {
		return fmt.Errorf("sales: %w", err)
	}
	for i, s := range sales {
		f := [4]string{hex.EncodeToString(s.SerialTag[:]), s.MakerID, s.SoldAt.String(), s.Channel}
		if _, k, problem := check(f, 0); problem != "" { // else check(f) == s: String is exact
			return fmt.Errorf("sales: cannot format sale %d: %s %q: %s", i, columns()[k], f[k], problem)
		}
		if err := cw.Write(f[:]); err != nil {
			return fmt.Errorf("sales: %w", err)
		}
	}
	if cw.Flush(); cw.Error() != nil {
		return fmt.Errorf("sales: %w", cw.Error())
	}
	return nil
}
