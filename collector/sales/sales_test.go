package sales

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"amos.example/amosd/proof"
)

// tag returns the serial tag whose 32 bytes are all b, as 64 hex digits.
func tag(b byte) string { return strings.Repeat(fmt.Sprintf("%02x", b), 32) }

func tagBytes(b byte) (t [32]byte) {
	for i := range t {
		t[i] = b
	}
	return t
}

const header = "serial_tag,maker_id,sold_at,channel\n"

// csvRow returns one CSV line for the fields.
func csvRow(serial, maker, soldAt, channel string) string {
	return serial + "," + maker + "," + soldAt + "," + channel + "\n"
}

// jsonObj returns one compact JSON object for the fields.
func jsonObj(serial, maker, soldAt, channel string) string {
	return fmt.Sprintf(`{"serial_tag":%q,"maker_id":%q,"sold_at":%q,"channel":%q}`, serial, maker, soldAt, channel)
}

var (
	good1 = csvRow(tag(1), "acme", "2026-11-30", "retail")
	good2 = csvRow(tag(2), "acme", "2026-12-01", "online.shop_1-a")
)

// prettyJSON is an indented array whose third object (the bad one, when bad is set) starts on line 5
// and whose first two objects start on lines 2 and 4.
func prettyJSON(bad string) string {
	third := jsonObj(tag(3), "acme", "2026-12-02", "retail")
	if bad != "" {
		third = bad
	}
	return "[\n  " + jsonObj(tag(1), "acme", "2026-11-30", "retail") + ",\n\n  " +
		jsonObj(tag(2), "acme", "2026-12-01", "web") + ",\n  " + third + "\n]\n"
}

func TestParseRefusals(t *testing.T) {
	long := strings.Repeat("a", 65)
	tests := []struct {
		name, file, in string
		line           int
		field, value   string
		problem        string // a substring of Problem
	}{
		// CSV: a blank line in the middle, so line numbers are not row indices.
		{"csv short serial", "s.csv", header + good1 + "\n" + csvRow("abc", "acme", "2026-01-01", "x"), 4, "serial_tag", "abc", "64 hex"},
		{"csv long serial", "s.csv", header + good1 + "\n" + csvRow(tag(3)+"00", "acme", "2026-01-01", "x"), 4, "serial_tag", tag(3) + "00", "64 hex"},
		{"csv non-hex serial", "s.csv", header + csvRow(strings.Repeat("g", 64), "acme", "2026-01-01", "x"), 2, "serial_tag", strings.Repeat("g", 64), "64 hex"},
		{"csv zero serial", "s.csv", header + "\n\n" + csvRow(tag(0), "acme", "2026-01-01", "x"), 4, "serial_tag", tag(0), "zeros"},
		{"csv bad maker", "s.csv", header + good1 + "\n" + csvRow(tag(3), "Acme", "2026-01-01", "x"), 4, "maker_id", "Acme", "[a-z0-9-]"},
		{"csv empty maker", "s.csv", header + good1 + good2 + csvRow(tag(3), "", "2026-01-01", "x"), 4, "maker_id", "", "[a-z0-9-]"},
		{"csv bad month", "s.csv", header + good1 + "\n" + csvRow(tag(3), "acme", "2026-13-01", "x"), 4, "sold_at", "2026-13-01", "not a date"},
		{"csv no leap day", "s.csv", header + csvRow(tag(3), "acme", "2027-02-29", "x"), 2, "sold_at", "2027-02-29", "not a date"},
		{"csv short date", "s.csv", header + csvRow(tag(3), "acme", "2026-1-01", "x"), 2, "sold_at", "2026-1-01", "not a date"},
		{"csv year 1999", "s.csv", header + csvRow(tag(3), "acme", "1999-12-31", "x"), 2, "sold_at", "1999-12-31", "2000..9999"},
		{"csv bad time", "s.csv", header + csvRow(tag(3), "acme", "2026-11-30T25:00:00Z", "x"), 2, "sold_at", "2026-11-30T25:00:00Z", "not a date"},
		{"csv time without zone", "s.csv", header + csvRow(tag(3), "acme", "2026-11-30T10:00:00", "x"), 2, "sold_at", "2026-11-30T10:00:00", "not a date"},
		{"csv empty channel", "s.csv", header + good1 + "\n" + csvRow(tag(3), "acme", "2026-01-01", ""), 4, "channel", "", "1..64"},
		{"csv channel space", "s.csv", header + csvRow(tag(3), "acme", "2026-01-01", `"a b"`), 2, "channel", "a b", "1..64"},
		{"csv channel too long", "s.csv", header + csvRow(tag(3), "acme", "2026-01-01", long), 2, "channel", long, "1..64"},
		{"csv value not trimmed", "s.csv", header + csvRow(tag(3), " acme", "2026-01-01", "x"), 2, "maker_id", " acme", "[a-z0-9-]"},
		{"csv multi-line field", "s.csv", header + good1 + csvRow(tag(3), "acme", "2026-01-01", "\"a\nb\""), 3, "channel", "a\nb", "1..64"},
		{"csv too few fields", "s.csv", header + good1 + "\n" + tag(3) + ",acme,2026-01-01\n", 4, "", "", "number of fields"},
		{"csv too many fields", "s.csv", header + good1 + csvRow(tag(3), "acme", "2026-01-01", "x,y"), 3, "", "", "number of fields"},
		{"csv bare quote", "s.csv", header + good1 + "\n" + tag(3) + ",ac\"me,2026-01-01,x\n", 4, "", "", "quote"},
		{"csv unknown column", "s.csv", "serial_tag,maker_id,sold_at,channel,price\n" + good1, 1, "", "price", "unknown"},
		{"csv repeated column", "s.csv", "serial_tag,maker_id,sold_at,maker_id\n" + good1, 1, "", "maker_id", "repeated"},
		{"csv missing column", "s.csv", "serial_tag,maker_id,sold_at\n" + tag(1) + ",acme,2026-01-01\n", 1, "", "channel", "missing column"},
		{"csv column case", "s.csv", "serial_tag,Maker_ID,sold_at,channel\n" + good1, 1, "", "Maker_ID", "unknown"},
		{"csv no header", "s.csv", good1 + good2, 0, "", "", "no header"},
		{"csv binary", "s.csv", "\x00\x01\x02\xff", 0, "", "", "no header"},
		{"empty file", "s.csv", "", 0, "", "", "no rows"},
		{"blank file", "s.csv", " \n\n\t\r\n", 0, "", "", ""},
		{"header only", "s.csv", "\ufeff" + header + "\n", 0, "", "", "no rows"},
		{"csv conflicting duplicate", "s.csv", header + good1 + good2 + "\n" + csvRow(tag(1), "acme", "2026-11-30", "web"), 5, "serial_tag", tag(1), "also on line 2"},

		// JSON: the bad object starts on line 5 of a pretty-printed file.
		{"json short serial", "s.json", prettyJSON(jsonObj("abc", "acme", "2026-01-01", "x")), 5, "serial_tag", "abc", "64 hex"},
		{"json zero serial", "s.json", prettyJSON(jsonObj(tag(0), "acme", "2026-01-01", "x")), 5, "serial_tag", tag(0), "zeros"},
		{"json bad maker", "s.json", prettyJSON(jsonObj(tag(3), "ac_me", "2026-01-01", "x")), 5, "maker_id", "ac_me", "[a-z0-9-]"},
		{"json bad date", "s.json", prettyJSON(jsonObj(tag(3), "acme", "2027-02-29", "x")), 5, "sold_at", "2027-02-29", "not a date"},
		{"json bad channel", "s.json", prettyJSON(jsonObj(tag(3), "acme", "2026-01-01", "x/y")), 5, "channel", "x/y", "1..64"},
		{"json multi-line object", "s.json", prettyJSON("{\n\"serial_tag\": \"" + tag(3) + "\",\n\"maker_id\": \"acme\",\n\"sold_at\": \"x\",\n\"channel\": \"x\"}"), 5, "sold_at", "x", "not a date"},
		{"json number", "s.json", prettyJSON(`{"serial_tag":"` + tag(3) + `","maker_id":"acme","sold_at":20260101,"channel":"x"}`), 5, "sold_at", "20260101", "not a string"},
		{"json null", "s.json", prettyJSON(`{"serial_tag":"` + tag(3) + `","maker_id":null}`), 5, "maker_id", "null", "not a string"},
		{"json nested", "s.json", prettyJSON(`{"serial_tag":["` + tag(3) + `"]}`), 5, "serial_tag", "[", "not a string"},
		{"json unknown key", "s.json", prettyJSON(`{"serial_tag":"` + tag(3) + `","price":"1"}`), 5, "", "price", "unknown"},
		{"json repeated key", "s.json", prettyJSON(`{"channel":"x","channel":"x"}`), 5, "", "channel", "repeated"},
		{"json missing key", "s.json", prettyJSON(`{"serial_tag":"` + tag(3) + `","maker_id":"acme","sold_at":"2026-01-01"}`), 5, "channel", "", "missing"},
		{"json not an object", "s.json", prettyJSON(`"` + tag(3) + `"`), 5, "", "", "not a JSON object"},
		{"json syntax error", "s.json", prettyJSON(`{"serial_tag" "x"}`), 5, "", "", "JSON"},
		{"json truncated", "s.json", "[\n" + jsonObj(tag(1), "acme", "2026-01-01", "x") + ",\n", 2, "", "", "end of file"},
		{"json trailing data", "s.json", prettyJSON("") + "\n[]\n", 8, "", "", "after the JSON value"},
		{"json two arrays", "s.json", "[" + jsonObj(tag(1), "acme", "2026-01-01", "x") + "]\n[]", 2, "", "", "after the JSON value"},
		{"json conflicting duplicate", "s.json", prettyJSON(jsonObj(tag(1), "acme", "2026-11-30", "web")), 5, "serial_tag", tag(1), "also on line 2"},
		{"json empty array", "s.json", " [ ]\n", 0, "", "", "no rows"},
		{"json empty sales", "s.json", `{"sales":[]}`, 0, "", "", "no rows"},
		{"json no sales", "s.json", "{}", 0, "", "", `no "sales"`},
		{"json wrapper unknown key", "s.json", "{\n\"rows\": []}", 2, "", "rows", "unknown"},
		{"json wrapper second key", "s.json", "{\"sales\": [" + jsonObj(tag(1), "acme", "2026-01-01", "x") + "],\n\"sales\": []}", 2, "", "sales", "repeated"},
		{"json sales not array", "s.json", `{"sales": {}}`, 1, "", "", "not an array"},
		{"json top-level object row", "s.json", jsonObj(tag(1), "acme", "2026-01-01", "x"), 1, "", "serial_tag", "unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows, err := Parse(tt.file, []byte(tt.in), 0)
			if err == nil {
				t.Fatalf("Parse accepted %q: %v", tt.in, rows)
			}
			if !errors.Is(err, ErrBadRow) {
				t.Errorf("error %v does not wrap ErrBadRow", err)
			}
			var re *RowError
			if !errors.As(err, &re) {
				t.Fatalf("error %T %v is not a *RowError", err, err)
			}
			if re.File != tt.file || re.Line != tt.line || re.Field != tt.field || re.Value != tt.value ||
				!strings.Contains(re.Problem, tt.problem) {
				t.Errorf("got %#v (%v), want line %d field %q value %q problem ~%q",
					re, err, tt.line, tt.field, tt.value, tt.problem)
			}
		})
	}
}

func TestRowErrorString(t *testing.T) {
	in := header + good1 + good2 + "\n" + good2 + good2 + csvRow(tag(4), "acme", "2026-13-01", "x")
	_, err := Parse("sales.csv", []byte(in), 0)
	want := `sales.csv line 7: sold_at "2026-13-01": not a date YYYY-MM-DD or an RFC 3339 time`
	if err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
	for _, tt := range []struct {
		e    RowError
		want string
	}{
		{RowError{File: "f", Problem: "no rows"}, "f: no rows"},
		{RowError{File: "f", Line: 3, Problem: "p"}, "f line 3: p"},
		{RowError{File: "f", Line: 3, Field: "channel", Problem: "missing"}, "f line 3: channel: missing"},
		{RowError{File: "f", Line: 1, Value: "x\n", Problem: "p"}, `f line 1: "x\n": p`},
		{RowError{File: "f", Line: 1, Field: "channel", Value: strings.Repeat("a", 100), Problem: "p"},
			`f line 1: channel "` + strings.Repeat("a", 80) + `...": p`},
	} {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("got %s, want %s", got, tt.want)
		}
	}
}

func TestParseConflictNamesBothLines(t *testing.T) {
	in := header + good1 + "\n" + good2 + csvRow(tag(1), "acme", "2026-11-30", "web")
	_, err := Parse("sales.csv", []byte(in), 0)
	if err == nil || !strings.Contains(err.Error(), "line 5") || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("got %v, want lines 5 and 2 named", err)
	}
}

func sale(b byte, maker string, y int, m time.Month, d int, channel string) Sale {
	return Sale{SerialTag: tagBytes(b), MakerID: maker, SoldAt: proof.NewDate(y, m, d), Channel: channel}
}

func TestParseAccepts(t *testing.T) {
	s1 := sale(1, "acme", 2026, 11, 30, "retail")
	s2 := sale(2, "acme", 2026, 12, 1, "online.shop_1-a")
	tests := []struct {
		name string
		in   string
		zone int
		want []Row
	}{
		{"csv", header + good1 + good2, 0, []Row{{2, s1}, {3, s2}}},
		{"csv blank lines and CRLF", "\n" + header + "\r\n" + good1 + "\r\n\r\n" + good2 + "\n\n", 0, []Row{{4, s1}, {7, s2}}},
		{"csv BOM", "\ufeff" + header + good1 + good2, 0, []Row{{2, s1}, {3, s2}}},
		{"csv no final newline", header + good1 + strings.TrimSuffix(good2, "\n"), 0, []Row{{2, s1}, {3, s2}}},
		{"csv columns in another order", " channel , sold_at,serial_tag,maker_id\nretail,2026-11-30," + tag(1) + ",acme\n" +
			`"online.shop_1-a",2026-12-01,` + strings.ToUpper(tag(2)) + ",acme\n", 0, []Row{{2, s1}, {3, s2}}},
		{"csv identical duplicates", header + good1 + good2 + good1 + "\n" + good2 + good1, 0, []Row{{2, s1}, {3, s2}}},
		{"csv duplicate identical after parsing", header + good1 + csvRow(strings.ToUpper(tag(1)), "acme", "2026-11-30T16:30:00+08:00", "retail"), 0, []Row{{2, s1}}},
		{"csv leap day", header + csvRow(tag(1), "acme", "2028-02-29", "x"), 0, []Row{{2, sale(1, "acme", 2028, 2, 29, "x")}}},
		{"csv rfc3339 +480", header + csvRow(tag(1), "acme", "2026-11-30T16:30:00Z", "x"), 480, []Row{{2, sale(1, "acme", 2026, 12, 1, "x")}}},
		{"csv rfc3339 0", header + csvRow(tag(1), "acme", "2026-11-30T16:30:00Z", "x"), 0, []Row{{2, sale(1, "acme", 2026, 11, 30, "x")}}},
		{"csv rfc3339 nano with offset", header + csvRow(tag(1), "acme", "2026-12-01T00:30:00.123456789+08:00", "x"), -60, []Row{{2, sale(1, "acme", 2026, 11, 30, "x")}}},
		{"csv date ignores zone", header + csvRow(tag(1), "acme", "2026-11-30", "x"), 840, []Row{{2, sale(1, "acme", 2026, 11, 30, "x")}}},
		{"json array", prettyJSON(""), 0, []Row{{2, sale(1, "acme", 2026, 11, 30, "retail")}, {4, sale(2, "acme", 2026, 12, 1, "web")}, {5, sale(3, "acme", 2026, 12, 2, "retail")}}},
		{"json BOM and wrapper", "\ufeff\n{\"sales\": [\n" + jsonObj(tag(1), "acme", "2026-11-30", "retail") + ",\n\n" +
			jsonObj(tag(2), "acme", "2026-12-01", "online.shop_1-a") + "]}\n", 0, []Row{{3, s1}, {5, s2}}},
		{"json keys in another order", `[{"channel":"retail","sold_at":"2026-11-30T16:30:00Z","maker_id":"acme","serial_tag":"` + tag(1) + `"}]`, 0, []Row{{1, s1}}},
		{"json rfc3339 +480", `[{"channel":"x","sold_at":"2026-11-30T16:30:00Z","maker_id":"acme","serial_tag":"` + tag(1) + `"}]`, 480, []Row{{1, sale(1, "acme", 2026, 12, 1, "x")}}},
		{"json identical duplicates", "[" + jsonObj(tag(1), "acme", "2026-11-30", "retail") + ",\n" + jsonObj(tag(1), "acme", "2026-11-30", "retail") + "]", 0, []Row{{1, s1}}},
		{"json escapes", `[{"serial_tag":"` + tag(1) + `","maker_id":"\u0061cme","sold_at":"2026-11-30","channel":"retail"}]`, 0, []Row{{1, s1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse("f", []byte(tt.in), tt.zone)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseMaxRows(t *testing.T) {
	in := []byte(header + good1 + good2 + good1 + "\n" + csvRow(tag(3), "acme", "2026-01-01", "x"))
	if _, err := parse("f", in, 0, 4); err != nil {
		t.Fatal(err)
	}
	_, err := parse("f", in, 0, 3)
	var re *RowError
	if !errors.As(err, &re) || re.Line != 6 || !strings.Contains(re.Problem, "more than 3 rows") {
		t.Errorf("got %v, want line 6 more than 3 rows", err)
	}
}

func TestParseZoneOffsetRange(t *testing.T) {
	in := []byte(header + good1)
	for _, zone := range []int{proof.MinUTCOffsetMinutes, proof.MaxUTCOffsetMinutes} {
		if _, err := Parse("f", in, zone); err != nil {
			t.Errorf("zone %d: %v", zone, err)
		}
	}
	for _, zone := range []int{proof.MinUTCOffsetMinutes - 1, proof.MaxUTCOffsetMinutes + 1} {
		if _, err := Parse("f", in, zone); err == nil || errors.Is(err, ErrBadRow) {
			t.Errorf("zone %d: got %v, want a non-row error", zone, err)
		}
	}
}

func TestFormatRoundTrip(t *testing.T) {
	sales := []Sale{
		sale(0xab, "acme", 2026, 11, 30, "retail"),
		sale(1, "a", 2000, 1, 1, "x"),
		sale(0xff, strings.Repeat("z", 32), 9999, 12, 31, strings.Repeat("Z", 64)),
		sale(2, "maker-2", 2028, 2, 29, "web.shop_2-b"),
	}
	var buf bytes.Buffer
	if err := Format(&buf, sales); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(buf.String(), header+tag(0xab)+",acme,2026-11-30,retail\n") {
		t.Errorf("unexpected CSV:\n%s", buf.String())
	}
	rows, err := Parse("f", buf.Bytes(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(sales) {
		t.Fatalf("got %d rows, want %d", len(rows), len(sales))
	}
	for i, r := range rows {
		if r.Line != i+2 || r.Sale != sales[i] {
			t.Errorf("row %d: got %+v, want line %d %+v", i, r, i+2, sales[i])
		}
	}
}

func TestFormatRefusesInvalid(t *testing.T) {
	good := sale(1, "acme", 2026, 11, 30, "retail")
	for _, s := range []Sale{
		{MakerID: "acme", SoldAt: good.SoldAt, Channel: "x"},
		{SerialTag: good.SerialTag, MakerID: "ACME", SoldAt: good.SoldAt, Channel: "x"},
		{SerialTag: good.SerialTag, MakerID: "acme", SoldAt: proof.NewDate(2026, 2, 30), Channel: "x"},
		{SerialTag: good.SerialTag, MakerID: "acme", SoldAt: proof.NewDate(1999, 12, 31), Channel: "x"},
		{SerialTag: good.SerialTag, MakerID: "acme", SoldAt: proof.Date(2026_11_300), Channel: "x"},
		{SerialTag: good.SerialTag, MakerID: "acme", SoldAt: good.SoldAt, Channel: ""},
	} {
		if err := Format(&bytes.Buffer{}, []Sale{good, s}); err == nil || !strings.Contains(err.Error(), "sale 1") {
			t.Errorf("Format(%+v): got %v, want a refusal of sale 1", s, err)
		}
	}
}
