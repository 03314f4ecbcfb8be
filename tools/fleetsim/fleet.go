package fleetsim

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"amos.example/amosd/collector"
	"amos.example/amosd/collector/sales"
	"amos.example/amosd/proof"
)

// FleetSpec is one handset of a fleet scenario (month, phantom): the maker that
// certifies its key, its serial tag, and its month; optionally its key and the
// attestation chain its genesis carries.
type FleetSpec struct {
	Maker  string
	Serial [32]byte
	Plan   Plan         // its dates are the month's (Plan.In)
	Key    proof.Signer // nil: DeviceKey(Fleet.KeySeed, index)
	Chain  [][]byte     // nil: no attestation
}

// Fleet plays a month of handsets with plans: keys, maker certificates issued a week
// before first start, a genesis uploaded at first start (10:00 the day before the
// month), one record per date with interaction minted at its local midnight (or when
// the phone starts again after a night off) and uploaded when the phone is online
// (Plan.SyncsOn).
type Fleet struct {
	Server  *Server
	Month   collector.Month
	Offset  int // utc_offset_minutes of the fleet
	Workers int
	KeySeed uint64 // device i's key is DeviceKey(KeySeed, i) unless its spec has one
	Stores  int    // the first Stores devices keep a real amosd store under Dir
	Dir     string
	Logf    func(string, ...any)
	Specs   []FleetSpec

	Devices []*Device // made by Start, one per spec
	Stats   SyncStats // of every upload

	mu     sync.Mutex
	minted atomic.Int64
	began  time.Time
}

// GenesisAt is when the fleet's phones start for the first time.
func (f *Fleet) GenesisAt() time.Time {
	return f.Month.First().Start(f.Offset).Add(-14 * time.Hour)
}

// SetClock moves an in-process collector's clock to t (an external one's is its own).
func (f *Fleet) SetClock(t time.Time) {
	if f.Server.Clock != nil {
		f.Server.Clock.Set(t)
	}
}

// Minted is the number of records minted so far, genesis included.
func (f *Fleet) Minted() int { return int(f.minted.Load()) }

// Elapsed is the time since Start.
func (f *Fleet) Elapsed() time.Duration { return time.Since(f.began) }

func (f *Fleet) each(ctx context.Context, fn func(i int) error) error {
	return Parallel(ctx, len(f.Devices), f.Workers, fn)
}

func (f *Fleet) upload(ctx context.Context, d *Device) error {
	st, err := d.Sync(ctx)
	f.mu.Lock()
	f.Stats.Add(st)
	f.mu.Unlock()
	return err
}

// Start makes every handset and uploads its genesis, on the clock of first start.
func (f *Fleet) Start(ctx context.Context) error {
	if f.Logf == nil {
		f.Logf = func(string, ...any) {}
	}
	f.began = time.Now()
	f.Devices = make([]*Device, len(f.Specs))
	at := f.GenesisAt()
	f.SetClock(at)
	err := f.each(ctx, func(i int) error {
		key := f.Specs[i].Key
		if key == nil {
			k, err := DeviceKey(f.KeySeed, i)
			if err != nil {
				return err
			}
			key = k
		}
		m, ok := f.Server.Maker(f.Specs[i].Maker)
		if !ok {
			return fmt.Errorf("fleetsim: maker %q is not the server's", f.Specs[i].Maker)
		}
		cert, err := Certify(m, key.PublicKey(), f.Specs[i].Serial, "Amos T1", at.Add(-7*24*time.Hour))
		if err != nil {
			return err
		}
		d := NewDevice(i, key, cert, f.Offset)
		d.Chain = f.Specs[i].Chain
		f.Devices[i] = d
		if i < f.Stores {
			if err := d.UseStore(filepath.Join(f.Dir, fmt.Sprintf("store-%05d", i))); err != nil {
				return err
			}
		}
		if err := d.Connect(f.Server); err != nil {
			return err
		}
		if _, err := d.Genesis(at.Add(time.Duration(i%3600) * time.Second)); err != nil {
			return err
		}
		f.minted.Add(1)
		return f.upload(ctx, d)
	})
	if err != nil {
		return err
	}
	f.Logf("fleetsim: %d devices set up and their genesis uploaded in %s", len(f.Devices), time.Since(f.began).Round(time.Millisecond))
	return nil
}

// Play runs the month: each midnight closes a date, the phones that had interaction
// mint it (or, if they were off at that midnight, when they start again: Plan.Delays),
// and those online upload their queue. Every queue is empty at the end.
func (f *Fleet) Play(ctx context.Context) error {
	days := f.Month.Last().Day()
	next := make([]int, len(f.Devices)) // index of each plan's next day
	for day := 1; day <= days; day++ {
		date := proof.NewDate(f.Month.Year, f.Month.Month, day)
		midnight := date.Next().Start(f.Offset)
		f.SetClock(midnight.Add(time.Minute))
		now := midnight.Add(time.Minute)
		err := f.each(ctx, func(i int) error {
			d, p := f.Devices[i], &f.Specs[i].Plan
			// What the phone has minted by now: the date just ended, and one it was
			// off for at its midnight once it started again.
			off := false
			for next[i] < len(p.Days) {
				at := p.MintedAt(next[i], f.Offset).Add(time.Duration(i%50) * time.Second)
				if at.After(now) {
					off = p.Days[next[i]].Date < date || p.Days[next[i]].Date == date && p.Delays != nil && p.Delays[next[i]] > 0
					break
				}
				if _, err := d.Day(at, p.Days[next[i]], 0); err != nil {
					return err
				}
				next[i]++
				f.minted.Add(1)
			}
			if !off && p.SyncsOn(day, days) && d.Queued() > 0 {
				return f.upload(ctx, d)
			}
			return nil
		})
		if err != nil {
			return err
		}
		if day%7 == 0 || day == days {
			f.Logf("fleetsim: %s closed, %d records minted, %d requests so far (%s)", date, f.minted.Load(), f.Stats.Requests, time.Since(f.began).Round(time.Millisecond))
		}
	}
	for i, d := range f.Devices {
		if q := d.Queued(); q != 0 {
			return fmt.Errorf("fleetsim: device %d still has %d records queued at the end of the month", i, q)
		}
	}
	return nil
}

// Close releases every device's store and connections.
func (f *Fleet) Close() {
	for _, d := range f.Devices {
		if d != nil {
			d.Close()
		}
	}
}

// In returns the plan with its dates in month m (NewPlan numbers them 1..days).
func (p Plan) In(m collector.Month) Plan {
	p.Days = append([]proof.ActivityDay(nil), p.Days...)
	for j := range p.Days {
		if d := p.Days[j].Date; d >= 1 && d <= 31 {
			p.Days[j].Date = proof.NewDate(m.Year, m.Month, int(d))
		}
	}
	return p
}

// RegularPlan draws the month of a phone in real use, as NewPlan draws a Regular
// owner's (12 active days or more), uploaded every night.
func RegularPlan(rng *rand.Rand, maker string, m collector.Month) Plan {
	for {
		if p := NewPlan(rng, maker, m.Last().Day()); p.Profile == Regular {
			p.SyncEvery, p.SyncPhase = 1, 0
			return p.In(m)
		}
	}
}

// Channels are the sales channels of the payer's registry: its own Taobao shop and the
// carriers.
var Channels = [...]string{"taobao", "carrier"}

// SaleOf is the registry's row of handset i, sold by maker: 7 in 10 before the month
// (1 to 90 days before its first date), the others in it, on or before the first date
// the phone reports (any day of the month for one that reports none).
func SaleOf(rng *rand.Rand, i int, serial [32]byte, maker string, m collector.Month, days []proof.ActivityDay) sales.Sale {
	first, last := m.First(), m.Last()
	var sold proof.Date
	if rng.Float64() < 0.7 {
		sold = AddDays(first, -1-rng.IntN(90))
	} else {
		if len(days) > 0 {
			last = days[0].Date
		}
		sold = AddDays(first, rng.IntN(last.Day()-first.Day()+1))
	}
	return sales.Sale{SerialTag: serial, MakerID: maker, SoldAt: sold, Channel: Channels[i%len(Channels)]}
}

// AddDays returns the date n days after d.
func AddDays(d proof.Date, n int) proof.Date {
	return proof.DateOf(d.Start(0).AddDate(0, 0, n), 0)
}

// Register imports the sold handsets in one request (POST /v1/registry), checks that
// each was added or already there, and logs it.
func Register(srv *Server, sold []sales.Sale, logf func(string, ...any)) error {
	if len(sold) == 0 {
		return nil
	}
	began := time.Now()
	res, err := srv.RegisterSales(sold)
	if err != nil {
		return fmt.Errorf("fleetsim: registering %d sold handsets: %w", len(sold), err)
	}
	if res.Added+res.Unchanged != len(sold) {
		return fmt.Errorf("fleetsim: registering %d sold handsets: the collector added %d, %d unchanged", len(sold), res.Added, res.Unchanged)
	}
	logf("fleetsim: %d sold handsets registered (%d new, %d already) in %s", len(sold), res.Added, res.Unchanged, time.Since(began).Round(time.Millisecond))
	return nil
}
