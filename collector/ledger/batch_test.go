package ledger

import (
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"amos.example/amosd/proof"
)

// TestBatches: MonthDayBatches, DeviceBatches and SaleBatches give what MonthDays,
// Devices and Sales give, over several batches, on bbolt and in memory; a corrupt value
// of a later batch fails them.
func TestBatches(t *testing.T) {
	for name, open := range map[string]func(t *testing.T) Ledger{
		"mem": func(*testing.T) Ledger { return NewMem() },
		"bolt": func(t *testing.T) Ledger {
			l, err := OpenBolt(t.TempDir(), BoltOptions{})
			if err != nil {
				t.Fatal(err)
			}
			return l
		},
	} {
		t.Run(name, func(t *testing.T) {
			l := open(t)
			defer l.Close()
			fillBatches(t, l, 3*batchSize+100)
			m := MonthKey(202610)
			err := l.View(func(tx Tx) error {
				type run struct {
					id    proof.DeviceID
					epoch uint32
					days  []Day
				}
				var want []run
				if err := tx.MonthDays(m, func(id proof.DeviceID, epoch uint32, days []Day) error {
					want = append(want, run{id, epoch, slices.Clone(days)})
					return nil
				}); err != nil {
					return err
				}
				var mu sync.Mutex
				got := map[int][]run{} // by the number of devices before the batch
				if err := tx.MonthDayBatches(m, 3, func(first int, runs []DayRun) error {
					var rs []run
					for _, r := range runs {
						rs = append(rs, run{r.ID, r.Epoch, slices.Clone(r.Days)})
					}
					mu.Lock()
					defer mu.Unlock()
					got[first] = rs
					return nil
				}); err != nil {
					return err
				}
				if len(got) < 3 {
					t.Errorf("%d batches of days", len(got))
				}
				var all []run
				devices := 0
				for _, first := range slicesSorted(got) {
					if first != devices {
						t.Errorf("a batch after %d devices, want %d", first, devices)
					}
					for i, r := range got[first] {
						if i == 0 || r.id != got[first][i-1].id {
							devices++
						}
					}
					all = append(all, got[first]...)
				}
				if !reflect.DeepEqual(all, want) {
					t.Errorf("MonthDayBatches gave %d device-epochs, MonthDays %d (or they differ)", len(all), len(want))
				}

				var wantDevs []Device
				if err := tx.Devices(func(d *Device) error { wantDevs = append(wantDevs, *d); return nil }); err != nil {
					return err
				}
				gotDevs := map[int][]Device{}
				if err := tx.DeviceBatches(2, func(first int, devs []Device) error {
					var ds []Device
					for _, d := range devs {
						c, err := d.SharedCertificate()
						if err != nil {
							return err
						}
						if c != nil {
							kept := *c // what devs hold is valid only until fn returns
							c = &kept
						}
						d.Cert, d.parsed = slices.Clone(d.Cert), c
						ds = append(ds, d)
					}
					mu.Lock()
					defer mu.Unlock()
					gotDevs[first] = ds
					return nil
				}); err != nil {
					return err
				}
				var allDevs []Device
				for _, first := range slicesSorted(gotDevs) {
					if first != len(allDevs) {
						t.Errorf("a batch after %d devices, want %d", first, len(allDevs))
					}
					allDevs = append(allDevs, gotDevs[first]...)
				}
				for i := range wantDevs {
					wantDevs[i].PublicKey = proof.PublicKey{} // a lean decoding leaves it zero
				}
				if !reflect.DeepEqual(allDevs, wantDevs) {
					t.Errorf("DeviceBatches gave %d devices, Devices %d (or they differ)", len(allDevs), len(wantDevs))
				}

				var wantSales, gotSales []Sale
				if err := tx.Sales(func(s *Sale) error { wantSales = append(wantSales, *s); return nil }); err != nil {
					return err
				}
				salesAt := map[int][]Sale{}
				if err := tx.SaleBatches(2, func(first int, ss []Sale) error {
					mu.Lock()
					defer mu.Unlock()
					salesAt[first] = slices.Clone(ss)
					return nil
				}); err != nil {
					return err
				}
				for _, first := range slicesSorted(salesAt) {
					if first != len(gotSales) {
						t.Errorf("a batch after %d sales, want %d", first, len(gotSales))
					}
					gotSales = append(gotSales, salesAt[first]...)
				}
				if !reflect.DeepEqual(gotSales, wantSales) {
					t.Errorf("SaleBatches gave %d sales, Sales %d (or they differ)", len(gotSales), len(wantSales))
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}

			// fn fails: the scan fails with its error.
			err = l.View(func(tx Tx) error {
				return tx.MonthDayBatches(m, 2, func(first int, _ []DayRun) error {
					if first > batchSize {
						return fmt.Errorf("stop at %d", first)
					}
					return nil
				})
			})
			if err == nil || errors.Is(err, ErrCorrupt) {
				t.Errorf("MonthDayBatches whose fn fails: %v", err)
			}

			// A corrupt aggregate somewhere: the scan fails with ErrCorrupt.
			err = l.Update(func(tx Tx) error {
				id := device(3 * batchSize).ID
				return tx.(ledgerTx).kv.Put(bucketDays, daysKey(m, id, 9), []byte{1, 2, 3})
			})
			if err != nil {
				t.Fatal(err)
			}
			err = l.View(func(tx Tx) error {
				return tx.MonthDayBatches(m, 2, func(int, []DayRun) error { return nil })
			})
			if !errors.Is(err, ErrCorrupt) {
				t.Errorf("MonthDayBatches over a corrupt aggregate: %v, want ErrCorrupt", err)
			}
		})
	}
}

func slicesSorted[V any](m map[int]V) []int {
	keys := make([]int, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// device returns a device of an arbitrary Ed25519 key (n seeds it): the ledger never
// checks that a key is a point of the curve.
func device(n int) *Device {
	var pub [32]byte
	binary.BigEndian.PutUint64(pub[:], uint64(n)+1)
	k := proof.Ed25519Key(pub)
	return &Device{ID: k.DeviceID(), PublicKey: k, FirstSeen: 1_800_000_000}
}

// fillBatches writes n devices, most certified, with a sale each and days of October
// 2026 in one to three epochs; and some devices without days.
func fillBatches(t *testing.T, l Ledger, n int) {
	t.Helper()
	err := l.Update(func(tx Tx) error {
		for i := range n {
			d := device(i)
			if i%7 != 0 {
				c := &proof.Certificate{DevicePublicKey: d.PublicKey, MakerID: "konka", Model: "T1", IssuedAt: 1_800_000_000}
				binary.BigEndian.PutUint64(c.SerialTag[:], uint64(i)*2654435761)
				cb, err := c.MarshalBinary()
				if err != nil {
					return err
				}
				d.Cert, d.CertEpoch, d.CertMakerKey = cb, 1, proof.Ed25519Key([32]byte{1})
				s := &Sale{SerialTag: c.SerialTag, MakerID: []string{"konka", "tcl"}[i%2], SoldAt: proof.NewDate(2026, time.January, 1), Channel: "shop", RegisteredAt: 1}
				if err := tx.PutSale(s); err != nil {
					return err
				}
			}
			if i%11 == 0 {
				d.Attestation = &Attestation{Accepted: true, VerifiedAt: 1, Epoch: 1, Serials: []string{"ab"}}
			}
			if err := tx.PutDevice(d); err != nil {
				return err
			}
			if i%13 == 0 {
				continue
			}
			for epoch := uint32(1); epoch <= uint32(1+i%3); epoch++ {
				for day := 1 + i%5; day <= 31; day += 3 {
					a := proof.ActivityDay{Date: proof.NewDate(2026, time.October, day), InteractiveSeconds: uint32(i), Unlocks: uint16(day)}
					if err := tx.AddDay(d.ID, epoch, &Day{MintedAt: int64(i), Activity: a}); err != nil {
						return err
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
