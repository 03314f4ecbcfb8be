package fleetsim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"amos.example/amosd/collector"
	"amos.example/amosd/proof"
)

// FarmKind is one trick of a subsidy farm (or none: an honest phone).
type FarmKind uint8

// Farm kinds.
const (
	FarmHonest    FarmKind = iota // a normal phone of an honest maker (Plan), for contrast
	FarmClone                     // racks of phones driven by a script: the same counters every day, on every phone
	FarmSaturated                 // 86,400 interactive seconds, all 24 hours, an unlock a minute, every day
	FarmBackfill                  // the whole month minted in one burst at its end (the agent mints each date at its midnight)
	FarmReplay                    // the month reported, then a new epoch (genesis reason 2) reporting every date again
	FarmSerial                    // several keys certified with one serial_tag
	FarmFuture                    // the month, then dates after the server's date
)

var farmKindNames = [...]string{"honest", "clone", "saturated", "backfill", "replay", "shared-serial", "future-dates"}

func (k FarmKind) String() string { return farmKindNames[k] }

// FarmConfig configures the farm scenario: how many devices of each kind (zero values
// take the defaults named).
type FarmConfig struct {
	Month     collector.Month
	Seed      uint64
	Offset    int    // +480
	FarmMaker string // the maker running the farm; it must be one of the server's ("farmco")
	Honest    int    // 40, certified by the other makers
	Clones    int    // 30
	Saturated int    // 5
	Backfill  int    // 5
	Replay    int    // 3
	Serial    int    // 10 keys, one serial_tag
	Future    int    // 2
	Workers   int    // 16
	Server    *Server
	Out       io.Writer
	Logf      func(string, ...any)
}

// FarmDevice is one device of the farm scenario and what the collector showed of it.
type FarmDevice struct {
	Kind   FarmKind
	Maker  string
	Device *Device
	Days   []proof.ActivityDay // the counters of each date it reports (once)
	View   *collector.DeviceReport
}

// FarmResult is what the farm scenario saw.
type FarmResult struct {
	Devices  []*FarmDevice
	Claims   *collector.Claims
	Expected map[string]int // by the collector's rules: what it should pay
	Stats    SyncStats
}

// RunFarm uploads an honest fleet and a maker's farm through the real transport, then
// fetches the claims (as the payer) and each kind's device view (as its maker), checks
// the claims against the collector's documented rules, and reports what the collector
// shows of the farm, and what it does not catch.
func RunFarm(ctx context.Context, cfg FarmConfig) (*FarmResult, error) {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&cfg.Offset, 480)
	def(&cfg.Honest, 40)
	def(&cfg.Clones, 30)
	def(&cfg.Saturated, 5)
	def(&cfg.Backfill, 5)
	def(&cfg.Replay, 3)
	def(&cfg.Serial, 10)
	def(&cfg.Future, 2)
	def(&cfg.Workers, 16)
	if cfg.FarmMaker == "" {
		cfg.FarmMaker = "farmco"
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	srv := cfg.Server
	farm, ok := srv.Maker(cfg.FarmMaker)
	if !ok {
		return nil, fmt.Errorf("fleetsim: farm: maker %q is not registered", cfg.FarmMaker)
	}
	var honest []Maker
	for _, m := range srv.Makers {
		if m.ID != farm.ID {
			honest = append(honest, m)
		}
	}
	if len(honest) == 0 {
		return nil, errors.New("fleetsim: farm: no honest maker besides the farm's")
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
	days := last.Day()
	rng := rand.New(rand.NewPCG(cfg.Seed, 0xfa27))
	elig := collector.DefaultEligibility()
	genesisAt := first.Start(cfg.Offset).Add(-14 * time.Hour)
	res := &FarmResult{Expected: map[string]int{}}
	for _, m := range srv.Makers {
		res.Expected[m.ID] = 0
	}
	sharedSerial := SerialTag(cfg.Seed, "farm shared serial")
	clone := proof.ActivityDay{InteractiveSeconds: 1800, Unlocks: 5, ScreenOns: 6, ActiveHours: 0xFF00}
	full := proof.ActivityDay{InteractiveSeconds: 86400, Unlocks: 1440, ScreenOns: 1440, ActiveHours: proof.AllHours}
	monthOf := func(a proof.ActivityDay) []proof.ActivityDay {
		out := make([]proof.ActivityDay, days)
		for d := range days {
			out[d] = a
			out[d].Date = proof.NewDate(cfg.Month.Year, cfg.Month.Month, d+1)
		}
		return out
	}
	add := func(kind FarmKind, n int) error {
		for range n {
			i := len(res.Devices)
			key, err := DeviceKey(cfg.Seed+1<<32, i)
			if err != nil {
				return err
			}
			fd := &FarmDevice{Kind: kind, Maker: farm.ID}
			serial := SerialTag(cfg.Seed, fmt.Sprint("farm ", i))
			switch kind {
			case FarmHonest:
				fd.Maker = honest[i%len(honest)].ID
				p := NewPlan(rng, fd.Maker, days)
				for _, a := range p.Days {
					a.Date = proof.NewDate(cfg.Month.Year, cfg.Month.Month, int(a.Date))
					fd.Days = append(fd.Days, a)
				}
			case FarmClone, FarmBackfill, FarmReplay, FarmFuture:
				fd.Days = monthOf(clone)
			case FarmSaturated:
				fd.Days = monthOf(full)
			case FarmSerial:
				fd.Days = monthOf(clone)
				serial = sharedSerial
			}
			m, _ := srv.Maker(fd.Maker)
			cert, err := Certify(m, key.PublicKey(), serial, "Amos T1", genesisAt.Add(-time.Duration(i+1)*time.Hour))
			if err != nil {
				return err
			}
			fd.Device = NewDevice(i, key, cert, cfg.Offset)
			if err := fd.Device.Connect(srv); err != nil {
				return err
			}
			res.Devices = append(res.Devices, fd)
		}
		return nil
	}
	for _, k := range []struct {
		kind FarmKind
		n    int
	}{{FarmHonest, cfg.Honest}, {FarmClone, cfg.Clones}, {FarmSaturated, cfg.Saturated}, {FarmBackfill, cfg.Backfill},
		{FarmReplay, cfg.Replay}, {FarmSerial, cfg.Serial}, {FarmFuture, cfg.Future}} {
		if err := add(k.kind, k.n); err != nil {
			return nil, err
		}
	}
	defer func() {
		for _, fd := range res.Devices {
			fd.Device.Close()
		}
	}()
	// What the collector's documented rules pay: docs/dbus-api.md eligibility, one payment per
	// serial_tag; the tricks themselves are not rules.
	for _, fd := range res.Devices {
		n := 0
		for i := range fd.Days {
			if elig.Active(&fd.Days[i]) {
				n++
			}
		}
		if n >= elig.MinActiveDays {
			res.Expected[fd.Maker]++
		}
	}
	if cfg.Serial > 1 {
		res.Expected[farm.ID] -= cfg.Serial - 1
	}

	var mu sync.Mutex
	upload := func(d *Device) error {
		st, err := d.Sync(ctx)
		mu.Lock()
		res.Stats.Add(st)
		mu.Unlock()
		return err
	}
	devs := res.Devices
	each := func(fn func(fd *FarmDevice) error) error {
		return parallel(ctx, len(devs), cfg.Workers, func(i int) error { return fn(devs[i]) })
	}
	setClock(genesisAt)
	if err := each(func(fd *FarmDevice) error {
		if _, err := fd.Device.Genesis(genesisAt); err != nil {
			return err
		}
		return upload(fd.Device)
	}); err != nil {
		return nil, err
	}
	next := make(map[*FarmDevice]int)
	for day := 1; day <= days; day++ {
		date := proof.NewDate(cfg.Month.Year, cfg.Month.Month, day)
		midnight := date.Next().Start(cfg.Offset)
		setClock(midnight.Add(time.Minute))
		mu.Lock()
		idx := make([]int, len(devs))
		for i, fd := range devs {
			idx[i] = next[fd]
		}
		mu.Unlock()
		err := parallel(ctx, len(devs), cfg.Workers, func(i int) error {
			fd := devs[i]
			if fd.Kind == FarmBackfill || idx[i] >= len(fd.Days) || fd.Days[idx[i]].Date != date {
				return nil
			}
			if _, err := fd.Device.Day(midnight.Add(time.Duration(i%50)*time.Second), fd.Days[idx[i]], 0); err != nil {
				return err
			}
			mu.Lock()
			next[fd]++
			mu.Unlock()
			return upload(fd.Device)
		})
		if err != nil {
			return nil, err
		}
	}
	// After the month: the backfill burst, the replay in a new epoch, the future dates.
	end := last.Next().Start(cfg.Offset).Add(3 * time.Hour)
	setClock(end)
	if err := each(func(fd *FarmDevice) error {
		d := fd.Device
		switch fd.Kind {
		case FarmBackfill:
			for j, a := range fd.Days {
				if _, err := d.Day(end.Add(time.Duration(j)*time.Second), a, 0); err != nil {
					return err
				}
			}
		case FarmReplay:
			if _, err := d.Genesis(end); err != nil {
				return err
			}
			for j, a := range fd.Days {
				if _, err := d.Day(end.Add(time.Duration(j+1)*time.Second), a, 0); err != nil {
					return err
				}
			}
		case FarmFuture:
			for j := 2; j <= 4; j++ {
				a := clone
				a.Date = proof.DateOf(end.Add(time.Duration(j)*24*time.Hour), cfg.Offset)
				if _, err := d.Day(end.Add(time.Duration(j)*time.Second), a, 0); err != nil {
					return err
				}
			}
		default:
			return nil
		}
		return upload(d)
	}); err != nil {
		return nil, err
	}
	cfg.Logf("fleetsim: farm: %d devices, %d records accepted, %d refused (%v)", len(devs), res.Stats.Acked, res.Stats.Dead, res.Stats.DeadReasons)

	claims, err := srv.Claims(cfg.Month, srv.PayerToken)
	if err != nil {
		return res, err
	}
	res.Claims = claims
	for _, fd := range devs {
		token := srv.PayerToken
		if m, _ := srv.Maker(fd.Maker); m.Token != "" {
			token = m.Token // the maker's own view
		}
		v, _, err := srv.Device(fd.Device.ID(), token)
		if err != nil {
			return res, err
		}
		fd.View = v
	}
	if cfg.Out != nil {
		res.Print(cfg.Out, cfg.Month)
	}
	return res, res.Check()
}

// Check compares the claims with the collector's rules.
func (r *FarmResult) Check() error {
	var bad []string
	got := map[string]int{}
	for _, row := range r.Claims.Rows {
		got[row.MakerID] = row.EligibleDevices
	}
	for m, want := range r.Expected {
		if got[m] != want {
			bad = append(bad, fmt.Sprintf("%s: collector %d, expected %d", m, got[m], want))
		}
	}
	if len(bad) > 0 {
		slices.Sort(bad)
		return fmt.Errorf("%w: %v", ErrClaimsMismatch, bad)
	}
	return nil
}

// Print writes what the collector shows of each kind, the claims, and the notes.
func (r *FarmResult) Print(w io.Writer, m collector.Month) {
	fmt.Fprintf(w, "farm %s: %d devices; %d records accepted, %d refused %v\n", m, len(r.Devices), r.Stats.Acked, r.Stats.Dead, r.Stats.DeadReasons)
	fmt.Fprintf(w, "  %-14s %4s %-8s %-62s %s\n", "kind", "n", "maker", "GET /v1/devices/{id} of one (epochs; months)", "eligible by the view")
	for k := FarmHonest; k <= FarmFuture; k++ {
		var some []*FarmDevice
		for _, fd := range r.Devices {
			if fd.Kind == k {
				some = append(some, fd)
			}
		}
		if len(some) == 0 {
			continue
		}
		fd := some[len(some)-1]
		v := fd.View
		var ep []string
		for _, e := range v.Epochs {
			s := fmt.Sprintf("e%d seq %d, %d days", e.Epoch, e.HeadSeq, e.Accepted)
			if e.FutureDate > 0 {
				s += fmt.Sprintf(", %d future_date", e.FutureDate)
			}
			ep = append(ep, s)
		}
		var ms []string
		for _, mr := range v.Months {
			ms = append(ms, fmt.Sprintf("%s %d/%d active", mr.Month, mr.ActiveDays, mr.ReportedDays))
		}
		fmt.Fprintf(w, "  %-14s %4d %-8s %-62s %d of %d\n", k, len(some), fd.Maker, strings.Join(ep, "; ")+"; "+strings.Join(ms, ", "),
			eligibleByView(some, m), len(some))
	}
	PrintClaims(w, r.Claims, r.Expected)
	fmt.Fprintf(w, "  caught: a serial_tag is paid once (%d shared-serial keys eligible, 1 paid); a replayed month counts its dates once\n", countKind(r, FarmSerial))
	fmt.Fprintln(w, "  (62 day records, 31 days); dates after the server's date are refused (future_date, dead-lettered on the device).")
	fmt.Fprintln(w, "  not caught: identical counters on many devices, 24 h of use every day, a month minted in one burst: all paid.")
	fmt.Fprintln(w, "  The device view shows day counts, not counters or minted_at, so neither maker nor payer can see these")
	fmt.Fprintln(w, "  patterns through the API; detecting them (the ledger has the records) is a later issue.")
}

// eligibleByView counts the devices whose view shows at least 10 active days in m
// (before the one-payment-per-serial_tag rule, which the view does not show).
func eligibleByView(some []*FarmDevice, m collector.Month) int {
	n := 0
	for _, fd := range some {
		for _, mr := range fd.View.Months {
			if mr.Month == m.String() && mr.ActiveDays >= collector.DefaultEligibility().MinActiveDays {
				n++
			}
		}
	}
	return n
}

func countKind(r *FarmResult, k FarmKind) int {
	n := 0
	for _, fd := range r.Devices {
		if fd.Kind == k {
			n++
		}
	}
	return n
}
