package sales

import (
	"bytes"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"testing"

	"amos.example/amosd/proof"
)

// zoneOf maps any int to a valid reporting-zone offset.
func zoneOf(z int) int {
	const span = proof.MaxUTCOffsetMinutes - proof.MinUTCOffsetMinutes + 1
	return proof.MinUTCOffsetMinutes + ((z%span)+span)%span
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(header+good1+"\n"+good2), 0)
	f.Add([]byte("\ufeff channel,sold_at , serial_tag,maker_id\r\nx,2026-11-30T16:30:00Z,"+tag(7)+",acme\r\n"), 480)
	f.Add([]byte(prettyJSON("")), -720)
	f.Add([]byte(`{"sales":[`+jsonObj(tag(1), "acme", "2028-02-29", "retail")+`]}`), 840)
	f.Add([]byte(header+good1+good1+csvRow(tag(1), "acme", "2026-11-30", "web")), 0)
	f.Add([]byte(header+"\""+tag(1)+"\",acme,\"2026-11-30\",\"a\nb\"\n"), 0)
	f.Add([]byte("[\n"+jsonObj(tag(1), "acme", "2026-01-01", "x")+",\n"), 0)
	f.Fuzz(func(t *testing.T, b []byte, z int) {
		zone := zoneOf(z)
		rows, err := Parse("f", b, zone)
		if err != nil {
			var re *RowError
			if !errors.As(err, &re) || !errors.Is(err, ErrBadRow) || re.Line < 0 || re.Line > bytes.Count(b, []byte{'\n'})+1 {
				t.Fatalf("bad error %T %v", err, err)
			}
			return
		}
		if len(rows) == 0 {
			t.Fatal("no rows and no error")
		}
		sales := make([]Sale, len(rows))
		seen := map[[32]byte]bool{}
		for i, r := range rows {
			f := [4]string{hex.EncodeToString(r.SerialTag[:]), r.MakerID, r.SoldAt.String(), r.Channel}
			if s, _, problem := check(f, 0); problem != "" || s != r.Sale || seen[r.SerialTag] {
				t.Fatalf("row %d %+v: invalid (%s) or repeated", i, r, problem)
			}
			// Lines never go backwards; JSON objects may share a line, CSV rows may not.
			if r.Line < 1 || i > 0 && (r.Line < rows[i-1].Line || r.Line == rows[i-1].Line && !isJSON(b)) {
				t.Fatalf("row %d: line %d out of order", i, r.Line)
			}
			seen[r.SerialTag] = true
			sales[i] = r.Sale
		}
		var buf bytes.Buffer
		if err := Format(&buf, sales); err != nil {
			t.Fatal(err)
		}
		again, err := Parse("g", buf.Bytes(), zone)
		if err != nil || len(again) != len(rows) {
			t.Fatalf("Format then Parse: %v, %d rows, want %d", err, len(again), len(rows))
		}
		for i, r := range again {
			if r.Line != i+2 || r.Sale != sales[i] {
				t.Fatalf("row %d: got %+v, want line %d %+v", i, r, i+2, sales[i])
			}
		}
	})
}

// FuzzCSVAgainstJSON checks that one row with the same four values reads the same as CSV
// and as JSON: the same sale, or a refusal naming the same field.
func FuzzCSVAgainstJSON(f *testing.F) {
	f.Add(tag(1), "acme", "2026-11-30", "retail", 0)
	f.Add(tag(1), "acme", "2026-11-30T16:30:00Z", "retail", 480)
	f.Add(tag(0), "acme", "2026-11-30", "retail", 0)
	f.Add(tag(1), "Acme", "2027-02-29", "a b", 0)
	f.Add(tag(1), "acme", "2028-02-29", "a\r\nb", 0)
	f.Fuzz(func(t *testing.T, serial, maker, soldAt, channel string, z int) {
		zone := zoneOf(z)
		var c bytes.Buffer
		w := csv.NewWriter(&c)
		w.Write(columns())
		w.Write([]string{serial, maker, soldAt, channel})
		if w.Flush(); w.Error() != nil {
			t.Fatal(w.Error())
		}
		obj, err := json.Marshal(map[string]string{"serial_tag": serial, "maker_id": maker, "sold_at": soldAt, "channel": channel})
		if err != nil {
			t.Fatal(err)
		}
		fromCSV, errCSV := Parse("c", c.Bytes(), zone)
		fromJSON, errJSON := Parse("j", append(append([]byte("["), obj...), ']'), zone)
		var reCSV, reJSON *RowError
		switch {
		case errCSV == nil && errJSON == nil:
			if len(fromCSV) != 1 || len(fromJSON) != 1 || fromCSV[0].Sale != fromJSON[0].Sale ||
				fromCSV[0].Line != 2 || fromJSON[0].Line != 1 {
				t.Fatalf("CSV %+v, JSON %+v", fromCSV, fromJSON)
			}
		case errors.As(errCSV, &reCSV) && errors.As(errJSON, &reJSON):
			if reCSV.Field != reJSON.Field || reCSV.Field == "" {
				t.Fatalf("CSV refused %v, JSON refused %v", errCSV, errJSON)
			}
		default:
			t.Fatalf("CSV %v, JSON %v", errCSV, errJSON)
		}
	})
}

// isJSON reports whether Parse reads b as JSON: after a BOM, its first non-blank byte
// is [ or {.
func isJSON(b []byte) bool {
	b = bytes.TrimLeft(bytes.TrimPrefix(b, []byte("\xef\xbb\xbf")), " \t\r\n")
	return len(b) > 0 && (b[0] == '[' || b[0] == '{')
}
