package ledger

import (
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"amos.example/amosd/proof"
)

// both runs fn on a Mem and on a Bolt ledger.
func both(t *testing.T, fn func(t *testing.T, l Ledger)) {
	t.Run("mem", func(t *testing.T) { fn(t, NewMem()) })
	t.Run("bolt", func(t *testing.T) {
		l, err := OpenBolt(t.TempDir(), BoltOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		fn(t, l)
	})
}

func TestPayerState(t *testing.T) {
	both(t, func(t *testing.T, l Ledger) {
		var serial [32]byte
		serial[31] = 1
		id := proof.DeviceID{9}
		sale := &Sale{SerialTag: serial, MakerID: "konka", SoldAt: proof.NewDate(2028, time.February, 29), Channel: "taobao", RegisteredAt: 1800000000}
		err := l.Update(func(tx Tx) error {
			if err := tx.PutSale(sale); err != nil {
				return err
			}
			if err := tx.PutClosedMonth(&ClosedMonth{Month: 202802, ClosedAt: 1805000000, Claim: []byte("{}")}); err != nil {
				return err
			}
			for i, rel := range []bool{true, false} {
				d := &Decision{Month: 202802, DeviceID: id, Release: rel, At: int64(1804000000 + i), By: "wang", Why: "checked the shop's receipt"}
				if err := tx.AddDecision(d); err != nil {
					return err
				}
				if d.N != uint16(i) {
					t.Errorf("decision %d got N %d", i, d.N)
				}
			}
			if err := tx.AddLate(202802, id); err != nil {
				return err
			}
			return tx.AddLate(202802, id)
		})
		if err != nil {
			t.Fatal(err)
		}
		err = l.Update(func(tx Tx) error {
			if err := tx.PutClosedMonth(&ClosedMonth{Month: 202802, ClosedAt: 1, Claim: []byte("{}")}); !errors.Is(err, ErrExists) {
				t.Errorf("closing a closed month again: %v, want ErrExists", err)
			}
			if err := tx.AddDecision(&Decision{Month: 202802, DeviceID: id, By: "", Why: "x"}); err == nil {
				t.Error("a decision without who was stored")
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		err = l.View(func(tx Tx) error {
			got, err := tx.Sale(serial)
			if err != nil || got == nil || *got != *sale {
				t.Errorf("sale %+v, %v", got, err)
			}
			if s, _ := tx.Sale([32]byte{}); s != nil {
				t.Errorf("unregistered serial: %+v", s)
			}
			c, err := tx.ClosedMonth(202802)
			if err != nil || c == nil || c.ClosedAt != 1805000000 || string(c.Claim) != "{}" {
				t.Errorf("closed month %+v, %v", c, err)
			}
			if c, _ := tx.ClosedMonth(202803); c != nil {
				t.Errorf("open month: %+v", c)
			}
			var ds []*Decision
			tx.Decisions(202802, func(d *Decision) error { ds = append(ds, d); return nil })
			if len(ds) != 2 || !ds[0].Release || ds[1].Release || ds[1].By != "wang" || ds[1].N != 1 {
				t.Errorf("decisions %+v", ds)
			}
			n := uint32(0)
			tx.Late(202802, func(got proof.DeviceID, records uint32) error {
				if got == id {
					n = records
				}
				return nil
			})
			if n != 2 {
				t.Errorf("late records %d, want 2", n)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}

// TestBoltSchema1Upgrade: a ledger written by an early collector (schema 1, four
// buckets) is refused read-only (its claims need the month aggregates), and upgraded
// when opened for writing.
func TestBoltSchema1Upgrade(t *testing.T) {
	dir := t.TempDir()
	db, err := bolt.Open(filepath.Join(dir, BoltFileName), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range []string{"meta", "devices", "chains", "forks"} {
			if _, err := tx.CreateBucket([]byte(name)); err != nil {
				return err
			}
		}
		return tx.Bucket([]byte("meta")).Put(keySchema, binary.BigEndian.AppendUint32(nil, 1))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenBolt(dir, BoltOptions{ReadOnly: true}); !errors.Is(err, ErrOldSchema) || !strings.Contains(err.Error(), "open it once for writing") {
		t.Fatalf("read-only open of a schema 1 ledger: %v, want ErrOldSchema", err)
	}
	rw, err := OpenBolt(dir, BoltOptions{})
	if err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	if err := rw.Update(func(tx Tx) error { return tx.AddLate(202611, proof.DeviceID{1}) }); err != nil {
		t.Errorf("write after the upgrade: %v", err)
	}
	rw.Close()
	db, err = bolt.Open(filepath.Join(dir, BoltFileName), 0o600, &bolt.Options{Timeout: time.Second, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket([]byte("meta")).Get(keySchema); binary.BigEndian.Uint32(v) != schemaVersion {
			t.Errorf("schema after the upgrade %x", v)
		}
		return nil
	})
}

// TestBoltSchema2Upgrade: a ledger written before the month aggregates (schema 2) gets
// them built from its accepted activity records when opened for writing, the same as
// ingest would have kept them; read-only it is refused.
func TestBoltSchema2Upgrade(t *testing.T) {
	g := loadGolden(t)
	dir := t.TempDir()
	l, err := OpenBolt(dir, BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	collect := func(l Ledger) map[string][]Day {
		out := map[string][]Day{}
		err := l.View(func(tx Tx) error {
			for _, m := range []MonthKey{202609, 202610, 202611, 202612} {
				err := tx.MonthDays(m, func(id proof.DeviceID, epoch uint32, days []Day) error {
					out[fmt.Sprint(m, id, epoch)] = slices.Clone(days)
					return nil
				})
				if err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	err = l.Update(func(tx Tx) error {
		for i, raw := range g.chain {
			rec, err := proof.Decode(raw)
			if err != nil {
				return err
			}
			v := VerdictAccepted
			if i == 2 {
				v = VerdictStale // linked, not accepted: not in the aggregate
			}
			if err := tx.PutRecord(rec.DeviceID, rec.Epoch, rec.Seq, &Record{Verdict: v, Bytes: raw}); err != nil {
				return err
			}
			if a, ok := rec.Activity(); ok && v == VerdictAccepted {
				if err := tx.AddDay(rec.DeviceID, rec.Epoch, &Day{MintedAt: rec.MintedAt, Activity: *a}); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := collect(l)
	if n := len(want); n == 0 {
		t.Fatal("the golden chain gave no aggregate")
	}
	l.Close()
	// Make it a schema 2 ledger: no days bucket.
	db, err := bolt.Open(filepath.Join(dir, BoltFileName), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket([]byte("days")); err != nil {
			return err
		}
		return tx.Bucket([]byte("meta")).Put(keySchema, binary.BigEndian.AppendUint32(nil, 2))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenBolt(dir, BoltOptions{ReadOnly: true}); !errors.Is(err, ErrOldSchema) {
		t.Fatalf("read-only open of a schema 2 ledger: %v, want ErrOldSchema", err)
	}
	rw, err := OpenBolt(dir, BoltOptions{})
	if err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	defer rw.Close()
	if got := collect(rw); !reflect.DeepEqual(got, want) {
		t.Errorf("aggregates after the upgrade:\n%v\nwant\n%v", got, want)
	}
}
