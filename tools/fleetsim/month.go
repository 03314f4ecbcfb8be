package fleetsim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"amos.example/amosd/collector"
	"amos.example/amosd/proof"
)

// MonthConfig configures the month scenario.
type MonthConfig struct {
	Devices int             // default 10,000
	Month   collector.Month // the simulated month
	Seed    uint64
	Offset  int // utc_offset_minutes of the fleet; default +480
	// Workers is how many devices work at once (TLS handshakes, uploads); default 32,
	// under the collector's 64 batches in flight.
	Workers int
	// Stores is how many devices (the first ones) keep their queue in a real amosd
	// bbolt store under Dir; the others queue in memory. Every store commit is fsync'd,
	// as on a handset, which is what makes 10,000 of them slow on one disk.
	Stores int
	Dir    string // where the stores go
	Server *Server
	Out    io.Writer // the report; nil for none
	Logf   func(string, ...any)
}

// MonthResult is what the month scenario measured and checked.
type MonthResult struct {
	Devices, Stores  int
	Month            collector.Month
	Minted           int // records minted (genesis included)
	Stats            SyncStats
	Elapsed          time.Duration
	Expected, Got    map[string]int // eligible devices by maker
	Profiles         map[Profile]int
	Claims           *collector.Claims
	MakerViewChecked bool
}

// RecordsPerSecond is the records accepted per second of the whole run.
func (r *MonthResult) RecordsPerSecond() float64 { return float64(r.Stats.Acked) / r.Elapsed.Seconds() }

// ErrClaimsMismatch means the collector's claims differ from what the simulation expects.
var ErrClaimsMismatch = errors.New("fleetsim: the collector's claims differ from the simulation's")

// RunMonth simulates a month of a fleet: every device gets a key, a maker certificate
// (makers in turn), a genesis uploaded at first start, one record per date with
// interaction minted at its local midnight, uploaded right away or later (offline
// stretches, Plan); then it fetches the claims as the payer and checks them against
// the eligibility the simulation expects, exactly.
func RunMonth(ctx context.Context, cfg MonthConfig) (*MonthResult, error) {
	if cfg.Devices <= 0 {
		cfg.Devices = 10000
	}
	if cfg.Offset == 0 {
		cfg.Offset = 480
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 32
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	srv := cfg.Server
	if srv == nil || len(srv.Makers) == 0 {
		return nil, errors.New("fleetsim: month: no server, or no makers")
	}
	first, last := cfg.Month.First(), cfg.Month.Last()
	if err := srv.monthOver(cfg.Month, cfg.Offset); err != nil {
		return nil, err
	}
	setClock := func(t time.Time) {
		if srv.Clock != nil {
			srv.Clock.Set(t)
		}
	}
	res := &MonthResult{Devices: cfg.Devices, Month: cfg.Month, Expected: map[string]int{}, Profiles: map[Profile]int{}}
	elig := collector.DefaultEligibility()
	start := time.Now()

	// The factory: keys, certificates, plans.
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x9e3779b97f4a7c15))
	days := last.Day()
	genesisAt := first.Start(cfg.Offset).Add(-14 * time.Hour) // 10:00 the day before
	devs := make([]*Device, cfg.Devices)
	plans := make([]Plan, cfg.Devices)
	for _, m := range srv.Makers {
		res.Expected[m.ID] = 0
	}
	for i := range devs {
		m := srv.Makers[i%len(srv.Makers)]
		plans[i] = NewPlan(rng, m.ID, days)
		for j := range plans[i].Days {
			d := plans[i].Days[j].Date
			plans[i].Days[j].Date = proof.NewDate(cfg.Month.Year, cfg.Month.Month, int(d))
		}
		res.Profiles[plans[i].Profile]++
		if plans[i].ActiveDays(elig) >= elig.MinActiveDays {
			res.Expected[m.ID]++
		}
	}
	var mu sync.Mutex
	each := func(fn func(i int) error) error { return parallel(ctx, len(devs), cfg.Workers, fn) }
	var stats SyncStats
	var minted atomic.Int64
	upload := func(d *Device) error {
		st, err := d.Sync(ctx)
		mu.Lock()
		stats.Add(st)
		mu.Unlock()
		return err
	}
	defer func() {
		for _, d := range devs {
			if d != nil {
				d.Close()
			}
		}
	}()

	// First start: every phone mints its genesis and uploads it at once.
	setClock(genesisAt)
	err := each(func(i int) error {
		key, err := DeviceKey(cfg.Seed, i)
		if err != nil {
			return err
		}
		m, _ := srv.Maker(plans[i].Maker)
		cert, err := Certify(m, key.PublicKey(), SerialTag(cfg.Seed, fmt.Sprint("month ", i)), "Amos T1", genesisAt.Add(-7*24*time.Hour))
		if err != nil {
			return err
		}
		d := NewDevice(i, key, cert, cfg.Offset)
		devs[i] = d
		if i < cfg.Stores {
			if err := d.UseStore(filepath.Join(cfg.Dir, fmt.Sprintf("store-%05d", i))); err != nil {
				return err
			}
		}
		if err := d.Connect(srv); err != nil {
			return err
		}
		if _, err := d.Genesis(genesisAt.Add(time.Duration(i%3600) * time.Second)); err != nil {
			return err
		}
		minted.Add(1)
		return upload(d)
	})
	if err != nil {
		return nil, err
	}
	res.Stores = min(cfg.Stores, cfg.Devices)
	cfg.Logf("fleetsim: %d devices set up and their genesis uploaded in %s", len(devs), time.Since(start).Round(time.Millisecond))

	// Each midnight closes a date: the phones that had interaction mint it, and those
	// online upload their queue.
	next := make([]int, len(devs)) // index of each plan's next day
	for day := 1; day <= days; day++ {
		date := proof.NewDate(cfg.Month.Year, cfg.Month.Month, day)
		midnight := date.Next().Start(cfg.Offset)
		setClock(midnight.Add(time.Minute))
		err := each(func(i int) error {
			d, p := devs[i], &plans[i]
			if next[i] < len(p.Days) && p.Days[next[i]].Date == date {
				if _, err := d.Day(midnight.Add(time.Duration(i%50)*time.Second), p.Days[next[i]], 0); err != nil {
					return err
				}
				next[i]++
				minted.Add(1)
			}
			if p.SyncsOn(day, days) && d.Queued() > 0 {
				return upload(d)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		if day%7 == 0 || day == days {
			cfg.Logf("fleetsim: %s closed, %d records minted, %d requests so far (%s)", date, minted.Load(), stats.Requests, time.Since(start).Round(time.Millisecond))
		}
	}
	for i, d := range devs {
		if q := d.Queued(); q != 0 {
			return nil, fmt.Errorf("fleetsim: device %d still has %d records queued at the end of the month", i, q)
		}
	}
	res.Minted = int(minted.Load())
	res.Stats = stats
	res.Elapsed = time.Since(start)

	// The payer's claims, checked exactly.
	setClock(last.Next().Start(cfg.Offset).Add(2 * time.Hour))
	claims, err := srv.Claims(cfg.Month, srv.PayerToken)
	if err != nil {
		return res, err
	}
	res.Claims = claims
	res.Got = map[string]int{}
	for _, r := range claims.Rows {
		res.Got[r.MakerID] = r.EligibleDevices
	}
	// Each maker sees its own row only.
	for _, m := range srv.Makers {
		if m.Token == "" {
			continue
		}
		own, err := srv.Claims(cfg.Month, m.Token)
		if err != nil {
			return res, err
		}
		if len(own.Rows) != 1 || own.Rows[0].MakerID != m.ID || own.Rows[0].EligibleDevices != res.Got[m.ID] {
			return res, fmt.Errorf("fleetsim: maker %s's own view of the claims is %+v", m.ID, own.Rows)
		}
		res.MakerViewChecked = true
	}
	if cfg.Out != nil {
		res.Print(cfg.Out)
	}
	return res, res.Check()
}

// Check compares the claims with the expectation, maker by maker, and the amounts.
func (r *MonthResult) Check() error {
	var bad []string
	for m, want := range r.Expected {
		if got, ok := r.Got[m]; !ok || got != want {
			bad = append(bad, fmt.Sprintf("%s: collector %d, expected %d", m, got, want))
		}
	}
	if r.Claims != nil {
		for _, row := range r.Claims.Rows {
			if row.AmountCNY != row.EligibleDevices {
				bad = append(bad, fmt.Sprintf("%s: amount %d CNY for %d devices", row.MakerID, row.AmountCNY, row.EligibleDevices))
			}
		}
	}
	if r.Stats.Dead > 0 {
		bad = append(bad, fmt.Sprintf("%d records refused for good: %v", r.Stats.Dead, r.Stats.DeadReasons))
	}
	if len(bad) > 0 {
		slices.Sort(bad)
		return fmt.Errorf("%w: %v", ErrClaimsMismatch, bad)
	}
	return nil
}

// Print writes the report: volumes, rates, and the claim table beside the expectation.
func (r *MonthResult) Print(w io.Writer) {
	s := r.Stats
	fmt.Fprintf(w, "month %s: %d devices (%d makers; profiles: %d regular, %d borderline, %d light, %d dormant)\n",
		r.Month, r.Devices, len(r.Expected), r.Profiles[Regular], r.Profiles[Borderline], r.Profiles[Light], r.Profiles[Dormant])
	fmt.Fprintf(w, "  records: %d minted, %d accepted, %d refused\n", r.Minted, s.Acked, s.Dead)
	fmt.Fprintf(w, "  syncs %d, HTTP requests %d (Retry-After honoured %d times), bodies %s sent / %s received, on the wire with TLS %s (%s per device)\n",
		s.Syncs, s.Requests, s.ServerWaits, size(s.BytesSent), size(s.BytesReceived), size(s.WireBytes), size(s.WireBytes/int64(max(r.Devices, 1))))
	fmt.Fprintf(w, "  %s: %.0f records/s, %.0f requests/s (%d CPUs); real bbolt stores for %d devices, memory queues for the others\n",
		r.Elapsed.Round(time.Millisecond), r.RecordsPerSecond(), float64(s.Requests)/r.Elapsed.Seconds(), runtime.NumCPU(), r.Stores)
	PrintClaims(w, r.Claims, r.Expected)
}

// PrintClaims writes a claim table, with the expectation beside each row if given.
func PrintClaims(w io.Writer, c *collector.Claims, expected map[string]int) {
	if c == nil {
		return
	}
	fmt.Fprintf(w, "claims %s (GET /v1/claims as the payer):\n", c.Month)
	fmt.Fprintf(w, "  %-16s %16s %11s", "maker_id", "eligible_devices", "amount_cny")
	if expected != nil {
		fmt.Fprintf(w, " %9s", "expected")
	}
	fmt.Fprintln(w)
	total := 0
	for _, row := range c.Rows {
		fmt.Fprintf(w, "  %-16s %16d %11d", row.MakerID, row.EligibleDevices, row.AmountCNY)
		total += row.AmountCNY
		if want, ok := expected[row.MakerID]; ok {
			verdict := "ok"
			if want != row.EligibleDevices {
				verdict = "MISMATCH"
			}
			fmt.Fprintf(w, " %9d %s", want, verdict)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "  %-16s %16s %11d\n", "total", "", total)
}

func size(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// TempDir makes a directory for a run's files when none is given.
func TempDir(dir, pattern string) (string, func(), error) {
	if dir != "" {
		return dir, func() {}, os.MkdirAll(dir, 0o755)
	}
	d, err := os.MkdirTemp("", pattern)
	return d, func() { os.RemoveAll(d) }, err
}

// parallel runs fn(0..n-1) on workers goroutines; it returns the first error, after
// which no new index starts.
func parallel(ctx context.Context, n, workers int, fn func(i int) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for range max(min(workers, n), 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := fn(i); err != nil {
					once.Do(func() { first = err })
					next.Store(int64(n))
					return
				}
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err()
}
