package fleetsim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"amos.example/amosd/collector"
	"amos.example/amosd/collector/claim"
	"amos.example/amosd/collector/sales"
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
	Devices, Stores int
	Month           collector.Month
	Minted          int // records minted (genesis included)
	// MintedLate are the records a phone minted when it started again after a night
	// off (Plan.Delays), and OverBackfill those minted more than 36 h after their date.
	MintedLate, OverBackfill int
	Stats                    SyncStats
	Elapsed                  time.Duration
	// Expected are the devices with enough active days by maker: each is paid, or
	// held for the payer's decision.
	Expected map[string]int
	Got      map[string]int // paid devices by maker
	Held     map[string]int // held devices by maker
	// HeldDevices are the held devices and their signals (GET /v1/claims/devices?outcome=held).
	HeldDevices      []claim.Device
	Registered       int // sold handsets registered (every device)
	Profiles         map[Profile]int
	Claims           *collector.Claims
	MakerViewChecked bool
	// Ledger names the in-process collector's ledger (Server.Ledger); "" for an
	// external collector.
	Ledger string
}

// MaxHeldShare is the most of an honest fleet that may be held: at most 1 % (issue 16).
const MaxHeldShare = 0.01

// HeldShare is the share of the fleet's devices held.
func (r *MonthResult) HeldShare() float64 {
	return float64(len(r.HeldDevices)) / float64(max(r.Devices, 1))
}

// RecordsPerSecond is the records accepted per second of the whole run.
func (r *MonthResult) RecordsPerSecond() float64 { return float64(r.Stats.Acked) / r.Elapsed.Seconds() }

// ErrClaimsMismatch means the collector's claims differ from what the simulation expects.
var ErrClaimsMismatch = errors.New("fleetsim: the collector's claims differ from the simulation's")

// RunMonth simulates a month of a fleet of sold handsets: every device gets a key, a
// maker certificate (makers in turn) with its own serial tag, registered with the
// collector as sold by that maker (one import, before the uploads); a genesis uploaded
// at first start, one record per date with interaction minted at its local midnight,
// uploaded right away or later (offline stretches, Plan). Then it fetches the claims
// and the held devices as the payer and checks them against the eligibility the
// simulation expects, exactly: each maker's paid and held devices add up to its
// devices with enough active days, and at most MaxHeldShare of the fleet is held.
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
	res := &MonthResult{Devices: cfg.Devices, Month: cfg.Month, Expected: map[string]int{}, Profiles: map[Profile]int{}, Ledger: srv.Ledger}
	elig := collector.DefaultEligibility()

	// The factory: plans, serial tags, and the payer's registry of sold handsets.
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x9e3779b97f4a7c15))
	saleRng := rand.New(rand.NewPCG(cfg.Seed, 0x5a1e5))
	days := cfg.Month.Last().Day()
	f := &Fleet{Server: srv, Month: cfg.Month, Offset: cfg.Offset, Workers: cfg.Workers, KeySeed: cfg.Seed,
		Stores: cfg.Stores, Dir: cfg.Dir, Logf: cfg.Logf, Specs: make([]FleetSpec, cfg.Devices)}
	defer f.Close()
	for _, m := range srv.Makers {
		res.Expected[m.ID] = 0
	}
	sold := make([]sales.Sale, cfg.Devices)
	for i := range f.Specs {
		m := srv.Makers[i%len(srv.Makers)]
		p := NewPlan(rng, m.ID, days).In(cfg.Month)
		f.Specs[i] = FleetSpec{Maker: m.ID, Serial: SerialTag(cfg.Seed, fmt.Sprint("month ", i)), Plan: p}
		sold[i] = SaleOf(saleRng, i, f.Specs[i].Serial, m.ID, cfg.Month, p.Days)
		res.Profiles[p.Profile]++
		if p.ActiveDays(elig) >= elig.MinActiveDays {
			res.Expected[m.ID]++
		}
		for _, d := range p.Delays {
			if d > 0 {
				res.MintedLate++
			}
			if d > 36*time.Hour {
				res.OverBackfill++
			}
		}
	}
	f.SetClock(f.GenesisAt())
	if err := srv.MonthOpen(cfg.Month, cfg.Offset); err != nil {
		return nil, err
	}
	if err := Register(srv, sold, cfg.Logf); err != nil {
		return nil, err
	}
	res.Registered = len(sold)

	if err := f.Start(ctx); err != nil {
		return nil, err
	}
	res.Stores = min(cfg.Stores, cfg.Devices)
	if err := f.Play(ctx); err != nil {
		return nil, err
	}
	res.Minted = f.Minted()
	res.Stats = f.Stats
	res.Elapsed = f.Elapsed()

	// The payer's claims and held devices, checked exactly.
	f.SetClock(cfg.Month.Last().Next().Start(cfg.Offset).Add(2 * time.Hour))
	claims, err := srv.Claims(cfg.Month, srv.PayerToken)
	if err != nil {
		return res, err
	}
	res.Claims = claims
	res.Got, res.Held = map[string]int{}, map[string]int{}
	for _, r := range claims.Rows {
		res.Got[r.MakerID] = r.Paid
		res.Held[r.MakerID] = r.Held
	}
	if res.HeldDevices, err = srv.ClaimDevices(cfg.Month, srv.PayerToken, string(claim.Held)); err != nil {
		return res, err
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
		if len(own.Rows) != 1 || own.Rows[0].MakerID != m.ID || own.Rows[0].Paid != res.Got[m.ID] || own.Rows[0].Held != res.Held[m.ID] {
			return res, fmt.Errorf("fleetsim: maker %s's own view of the claims is %+v", m.ID, own.Rows)
		}
		res.MakerViewChecked = true
	}
	if cfg.Out != nil {
		res.Print(cfg.Out)
	}
	return res, res.Check()
}

// Check compares the claims with the expectation, maker by maker: paid and held
// devices add up to the devices with enough active days, nothing is refused or
// unregistered (every handset was sold), at most MaxHeldShare is held, and the amounts.
func (r *MonthResult) Check() error {
	var bad []string
	for m, want := range r.Expected {
		if got, ok := r.Got[m]; !ok || got+r.Held[m] != want {
			bad = append(bad, fmt.Sprintf("%s: collector %d paid + %d held, expected %d", m, got, r.Held[m], want))
		}
	}
	if r.Claims != nil {
		for _, row := range r.Claims.Rows {
			if row.AmountCNY != row.Paid*collector.AmountPerDevice || row.EligibleDevices != row.Paid {
				bad = append(bad, fmt.Sprintf("%s: amount %d CNY, eligible_devices %d for %d paid devices", row.MakerID, row.AmountCNY, row.EligibleDevices, row.Paid))
			}
			if row.Refused != 0 || row.Unregistered != 0 || row.Late != 0 {
				bad = append(bad, fmt.Sprintf("%s: %d refused %v, %d unregistered, %d late records of sold handsets", row.MakerID, row.Refused, row.RefusedReasons, row.Unregistered, row.Late))
			}
		}
	}
	held := 0
	for _, n := range r.Held {
		held += n
	}
	if held != len(r.HeldDevices) {
		bad = append(bad, fmt.Sprintf("%d held in the claim rows, %d held devices listed", held, len(r.HeldDevices)))
	}
	if r.HeldShare() > MaxHeldShare {
		bad = append(bad, fmt.Sprintf("%d of %d honest devices held (%.2f %%, at most %.0f %%): %s", len(r.HeldDevices), r.Devices,
			100*r.HeldShare(), 100*MaxHeldShare, heldReasons(r.HeldDevices)))
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

// heldReasons counts the held devices' signals: "clone 2, burst 1", or "none".
func heldReasons(devs []claim.Device) string {
	n := map[string]int{}
	for _, d := range devs {
		for _, why := range d.Reasons {
			n[why]++
		}
	}
	if len(n) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(n)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, n[k]))
	}
	return strings.Join(parts, ", ")
}

// Print writes the report: volumes, rates, the claim table beside the expectation,
// and the held devices.
func (r *MonthResult) Print(w io.Writer) {
	s := r.Stats
	fmt.Fprintf(w, "month %s: %d devices (%d makers; profiles: %d regular, %d borderline, %d light, %d dormant), %d registered as sold\n",
		r.Month, r.Devices, len(r.Expected), r.Profiles[Regular], r.Profiles[Borderline], r.Profiles[Light], r.Profiles[Dormant], r.Registered)
	fmt.Fprintf(w, "  records: %d minted, %d accepted, %d refused; %d minted when the phone started again after a night off (%d of them more than 36 h late)\n",
		r.Minted, s.Acked, s.Dead, r.MintedLate, r.OverBackfill)
	fmt.Fprintf(w, "  syncs %d, HTTP requests %d (Retry-After honoured %d times), bodies %s sent / %s received, on the wire with TLS %s (%s per device)\n",
		s.Syncs, s.Requests, s.ServerWaits, size(s.BytesSent), size(s.BytesReceived), size(s.WireBytes), size(s.WireBytes/int64(max(r.Devices, 1))))
	fmt.Fprintf(w, "  %s: %.0f records/s, %.0f requests/s (%d CPUs); real bbolt stores for %d devices, memory queues for the others\n",
		r.Elapsed.Round(time.Millisecond), r.RecordsPerSecond(), float64(s.Requests)/r.Elapsed.Seconds(), runtime.NumCPU(), r.Stores)
	if r.Ledger != "" {
		fmt.Fprintf(w, "  the in-process collector's ledger: %s\n", r.Ledger)
	}
	PrintClaims(w, r.Claims, r.Expected)
	fmt.Fprintf(w, "  held: %d of %d honest devices (%.2f %%, target <= %.0f %%); signals: %s\n", len(r.HeldDevices), r.Devices,
		100*r.HeldShare(), 100*MaxHeldShare, heldReasons(r.HeldDevices))
	for i, d := range r.HeldDevices {
		if i == 5 {
			fmt.Fprintf(w, "    ... and %d more\n", len(r.HeldDevices)-i)
			break
		}
		var f []string
		for _, x := range d.Findings {
			f = append(f, string(x.Signal)+": "+x.Detail)
		}
		fmt.Fprintf(w, "    %s… %s, %d active days: %s\n", d.DeviceID[:12], d.MakerID, d.ActiveDays, strings.Join(f, "; "))
	}
}

// PrintClaims writes a claim table; expected, if given, are the devices each maker
// should have paid or held, beside its row.
func PrintClaims(w io.Writer, c *collector.Claims, expected map[string]int) {
	if c == nil {
		return
	}
	when := "provisional, closes"
	if c.Status == claim.StatusClosed {
		when = "closed at"
	}
	fmt.Fprintf(w, "claims %s (GET /v1/claims as the payer; %s %s):\n", c.Month, when,
		time.Unix(c.ClosesAt, 0).In(time.FixedZone("", 8*3600)).Format("2006-01-02 15:04 UTC+8"))
	fmt.Fprintf(w, "  %-16s %7s %6s %8s %13s %6s %11s", "maker_id", "paid", "held", "refused", "unregistered", "late", "amount_cny")
	if expected != nil {
		fmt.Fprintf(w, " %20s", "expected (paid+held)")
	}
	fmt.Fprintln(w)
	var total collector.ClaimRow
	for _, row := range c.Rows {
		fmt.Fprintf(w, "  %-16s %7d %6d %8d %13d %6d %11d", row.MakerID, row.Paid, row.Held, row.Refused, row.Unregistered, row.Late, row.AmountCNY)
		total.Paid += row.Paid
		total.Held += row.Held
		total.Refused += row.Refused
		total.Unregistered += row.Unregistered
		total.Late += row.Late
		total.AmountCNY += row.AmountCNY
		if want, ok := expected[row.MakerID]; ok {
			verdict := "ok"
			if want != row.Paid+row.Held {
				verdict = "MISMATCH"
			}
			fmt.Fprintf(w, " %20d %s", want, verdict)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "  %-16s %7d %6d %8d %13d %6d %11d\n", "total", total.Paid, total.Held, total.Refused, total.Unregistered, total.Late, total.AmountCNY)
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

// Parallel runs fn(0..n-1) on workers goroutines; it returns the first error, after
// which no new index starts.
func Parallel(ctx context.Context, n, workers int, fn func(i int) error) error {
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
