package attack

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
	"amos.example/amosd/collector/claim"
	"amos.example/amosd/collector/sales"
	"amos.example/amosd/proof"
	"amos.example/amosd/tools/fleetsim"
)

// FarmKind is one trick of a subsidy farm (or none: an honest phone).
type FarmKind uint8

// Farm kinds. The farm's phones are real handsets, registered as sold by the farm's
// maker, driven by a script; the kinds from FarmStolen on cheat on the registry or the
// records themselves.
const (
	FarmHonest       FarmKind = iota // a normal phone of an honest maker (Plan), for contrast
	FarmClone                        // racks of phones driven by a script: the same counters every day, on every phone
	FarmSaturated                    // 86,400 interactive seconds, all 24 hours, an unlock a minute, every day
	FarmBackfill                     // the whole month minted in one burst at its end (the agent mints each date at its midnight)
	FarmReplay                       // the month reported, then a new epoch (genesis reason 2) reporting every date again
	FarmSerial                       // several keys certified with one serial_tag
	FarmFuture                       // the month, then dates after the server's date
	FarmStolen                       // natural-looking months, certified with serial tags of an honest maker's sold handsets
	FarmUnregistered                 // natural-looking months, certified with made-up serial tags
	FarmFutureCert                   // a certificate issued a week after the server's time
	FarmBadMint                      // records minted at 0 (1970) or in 2100
	FarmLate                         // a natural-looking month, uploaded after the month closed
)

var farmKindNames = [...]string{"honest", "clone", "saturated", "backfill", "replay", "shared-serial", "future-dates",
	"stolen-serial", "unregistered", "future-cert", "bad-mint", "late"}

func (k FarmKind) String() string { return farmKindNames[k] }

// farmKinds are the kinds in the order of the report.
func farmKinds() []FarmKind {
	var ks []FarmKind
	for k := FarmHonest; k <= FarmLate; k++ {
		ks = append(ks, k)
	}
	return ks
}

// FarmConfig configures the farm scenario: how many devices of each kind (zero values
// take the defaults named, negative ones none).
type FarmConfig struct {
	Month        collector.Month
	Seed         uint64
	Offset       int    // +480
	FarmMaker    string // the maker running the farm; it must be one of the server's ("farmco")
	Honest       int    // 40, certified by the other makers
	Clones       int    // 30
	Saturated    int    // 5
	Backfill     int    // 5
	Replay       int    // 3
	Serial       int    // 10 keys, one serial_tag
	Future       int    // 2
	Stolen       int    // 5, at most Honest: each steals another honest handset's serial tag
	Unregistered int    // 5
	FutureCert   int    // 2
	BadMint      int    // 2
	// Late devices (2) upload their month after it closed: the in-process collector's
	// clock is moved past the close; an external collector has none.
	Late    int
	Workers int // 16
	Server  *fleetsim.Server
	Out     io.Writer
	Logf    func(string, ...any)
}

// FarmDevice is one device of the farm scenario and what the collector showed of it.
type FarmDevice struct {
	Kind    FarmKind
	Maker   string
	Device  *fleetsim.Device
	Days    []proof.ActivityDay // the counters of each date it reports (once)
	Stats   fleetsim.SyncStats  // its uploads
	View    *collector.DeviceReport
	Outcome *claim.Device // nil: the claim does not list it (no accepted day in the month)
}

// Farm returns whether the device is the farm maker's (every kind but honest).
func (fd *FarmDevice) Farm() bool { return fd.Kind != FarmHonest }

// FarmResult is what the farm scenario saw.
type FarmResult struct {
	Month     collector.Month
	FarmMaker string
	Devices   []*FarmDevice
	Claims    *collector.Claims
	// Expected are the honest devices with enough active days, by maker: each is paid,
	// or held (reported).
	Expected     map[string]int
	Stats        fleetsim.SyncStats
	Table        []*ConfusionRow // by true kind
	Registered   int             // sold handsets registered
	ViewsChecked bool            // the makers' own views of the devices were checked
	LateSkipped  bool            // an external collector: no late kind
	ClosedAt     time.Time       // when the month closed, if it had by the end
}

// RunFarm uploads an honest fleet and a maker's farm through the real transport, the
// farm's handsets registered as sold by the farm's maker and the honest ones by their
// makers; then it fetches the claims and every device's outcome as the payer, and the
// makers' own views, and sorts the outcomes by true kind (a confusion table). The
// targets: no farm device paid, and every honest device with enough active days paid
// or held.
func RunFarm(ctx context.Context, cfg FarmConfig) (*FarmResult, error) {
	def := func(v *int, d int) {
		switch {
		case *v == 0:
			*v = d
		case *v < 0:
			*v = 0
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
	def(&cfg.Stolen, 5)
	def(&cfg.Unregistered, 5)
	def(&cfg.FutureCert, 2)
	def(&cfg.BadMint, 2)
	def(&cfg.Late, 2)
	def(&cfg.Workers, 16)
	if cfg.FarmMaker == "" {
		cfg.FarmMaker = "farmco"
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	srv := cfg.Server
	if srv == nil {
		return nil, errors.New("fleetsim: farm: no server")
	}
	farm, ok := srv.Maker(cfg.FarmMaker)
	if !ok {
		return nil, fmt.Errorf("fleetsim: farm: maker %q is not registered", cfg.FarmMaker)
	}
	var honest []fleetsim.Maker
	for _, m := range srv.Makers {
		if m.ID != farm.ID {
			honest = append(honest, m)
		}
	}
	if len(honest) == 0 {
		return nil, errors.New("fleetsim: farm: no honest maker besides the farm's")
	}
	if cfg.Stolen > cfg.Honest {
		return nil, fmt.Errorf("fleetsim: farm: %d stolen serial tags need as many honest handsets (%d)", cfg.Stolen, cfg.Honest)
	}
	first, last := cfg.Month.First(), cfg.Month.Last()
	res := &FarmResult{Month: cfg.Month, FarmMaker: farm.ID, Expected: map[string]int{}}
	if srv.Clock == nil && cfg.Late > 0 {
		cfg.Logf("fleetsim: farm: an external collector's clock cannot be moved past the month's close: no late devices")
		cfg.Late, res.LateSkipped = 0, true
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
	// The server's time when the genesis records arrive: the simulated clock is set to
	// first start; an external collector's is now.
	genesisNow := genesisAt
	if srv.Clock == nil {
		genesisNow = srv.ServerNow()
	}
	for _, m := range honest {
		res.Expected[m.ID] = 0
	}
	sharedSerial := fleetsim.SerialTag(cfg.Seed, "farm shared serial")
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
	var sold []sales.Sale
	registered := map[[32]byte]bool{}
	sell := func(serial [32]byte, maker string) {
		if registered[serial] {
			return
		}
		registered[serial] = true
		sold = append(sold, sales.Sale{SerialTag: serial, MakerID: maker, SoldAt: fleetsim.AddDays(first, -30-len(sold)%60),
			Channel: fleetsim.Channels[len(sold)%len(fleetsim.Channels)]})
	}
	var honestSerials [][32]byte
	add := func(kind FarmKind, n int) error {
		for range n {
			i := len(res.Devices)
			key, err := fleetsim.DeviceKey(cfg.Seed+1<<32, i)
			if err != nil {
				return err
			}
			fd := &FarmDevice{Kind: kind, Maker: farm.ID}
			serial := fleetsim.SerialTag(cfg.Seed, fmt.Sprint("farm ", i))
			issued := genesisAt.Add(-time.Duration(i+1) * time.Hour)
			switch kind {
			case FarmHonest:
				fd.Maker = honest[i%len(honest)].ID
				fd.Days = fleetsim.NewPlan(rng, fd.Maker, days).In(cfg.Month).Days
				honestSerials = append(honestSerials, serial)
			case FarmClone, FarmBackfill, FarmReplay, FarmFuture:
				fd.Days = monthOf(clone)
			case FarmSaturated:
				fd.Days = monthOf(full)
			case FarmSerial:
				fd.Days = monthOf(clone)
				serial = sharedSerial
			case FarmStolen:
				fd.Days = fleetsim.RegularPlan(rng, fd.Maker, cfg.Month).Days
				serial = honestSerials[countKind(res, FarmStolen)]
			case FarmUnregistered, FarmBadMint, FarmLate:
				fd.Days = fleetsim.RegularPlan(rng, fd.Maker, cfg.Month).Days
			case FarmFutureCert:
				fd.Days = fleetsim.RegularPlan(rng, fd.Maker, cfg.Month).Days
				issued = genesisNow.Add(7 * 24 * time.Hour)
			}
			switch kind {
			case FarmStolen, FarmUnregistered:
			default:
				sell(serial, fd.Maker)
			}
			m, _ := srv.Maker(fd.Maker)
			cert, err := fleetsim.Certify(m, key.PublicKey(), serial, "Amos T1", issued)
			if err != nil {
				return err
			}
			fd.Device = fleetsim.NewDevice(i, key, cert, cfg.Offset)
			res.Devices = append(res.Devices, fd)
			if err := fd.Device.Connect(srv); err != nil {
				return err
			}
		}
		return nil
	}
	for _, k := range []struct {
		kind FarmKind
		n    int
	}{{FarmHonest, cfg.Honest}, {FarmClone, cfg.Clones}, {FarmSaturated, cfg.Saturated}, {FarmBackfill, cfg.Backfill},
		{FarmReplay, cfg.Replay}, {FarmSerial, cfg.Serial}, {FarmFuture, cfg.Future}, {FarmStolen, cfg.Stolen},
		{FarmUnregistered, cfg.Unregistered}, {FarmFutureCert, cfg.FutureCert}, {FarmBadMint, cfg.BadMint}, {FarmLate, cfg.Late}} {
		if err := add(k.kind, k.n); err != nil {
			return nil, err
		}
	}
	defer func() {
		for _, fd := range res.Devices {
			fd.Device.Close()
		}
	}()
	for _, fd := range res.Devices {
		if fd.Kind == FarmHonest && activeDays(fd.Days, elig) >= elig.MinActiveDays {
			res.Expected[fd.Maker]++
		}
	}

	// The payer registers what was sold, then the phones start.
	setClock(genesisAt)
	if err := srv.MonthOpen(cfg.Month, cfg.Offset); err != nil {
		return nil, err
	}
	if err := fleetsim.Register(srv, sold, cfg.Logf); err != nil {
		return nil, err
	}
	res.Registered = len(sold)
	var mu sync.Mutex
	upload := func(fd *FarmDevice) error {
		st, err := fd.Device.Sync(ctx)
		mu.Lock()
		res.Stats.Add(st)
		fd.Stats.Add(st)
		mu.Unlock()
		return err
	}
	devs := res.Devices
	each := func(fn func(i int, fd *FarmDevice) error) error {
		return fleetsim.Parallel(ctx, len(devs), cfg.Workers, func(i int) error { return fn(i, devs[i]) })
	}
	if err := each(func(_ int, fd *FarmDevice) error {
		if _, err := fd.Device.Genesis(genesisAt); err != nil {
			return err
		}
		return upload(fd)
	}); err != nil {
		return nil, err
	}
	epoch0 := time.Unix(0, 0)
	y2100 := time.Date(2100, time.January, 1, 0, 0, 0, 0, time.UTC)
	next := make([]int, len(devs))
	for day := 1; day <= days; day++ {
		date := proof.NewDate(cfg.Month.Year, cfg.Month.Month, day)
		midnight := date.Next().Start(cfg.Offset)
		setClock(midnight.Add(time.Minute))
		err := each(func(i int, fd *FarmDevice) error {
			if fd.Kind == FarmBackfill || next[i] >= len(fd.Days) || fd.Days[next[i]].Date != date {
				return nil
			}
			at := midnight.Add(time.Duration(i%50) * time.Second)
			if fd.Kind == FarmBadMint {
				at = epoch0
				if next[i]%2 == 1 {
					at = y2100
				}
			}
			if _, err := fd.Device.Day(at, fd.Days[next[i]], 0); err != nil {
				return err
			}
			next[i]++
			if fd.Kind == FarmLate {
				return nil // offline until the month has closed
			}
			return upload(fd)
		})
		if err != nil {
			return nil, err
		}
	}
	// After the month: the backfill burst, the replay in a new epoch, the future dates.
	end := last.Next().Start(cfg.Offset).Add(3 * time.Hour)
	if srv.Clock == nil {
		end = srv.ServerNow() // an external collector's clock: the future dates are after its date
	}
	setClock(end)
	if err := each(func(_ int, fd *FarmDevice) error {
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
		return upload(fd)
	}); err != nil {
		return nil, err
	}
	// The late phones come online after the month closed (an in-process collector only).
	if cfg.Late > 0 {
		c, err := srv.Claims(cfg.Month, srv.PayerToken)
		if err != nil {
			return res, err
		}
		setClock(time.Unix(c.ClosesAt, 0).Add(time.Hour))
		if err := each(func(_ int, fd *FarmDevice) error {
			if fd.Kind != FarmLate {
				return nil
			}
			return upload(fd)
		}); err != nil {
			return nil, err
		}
	}
	cfg.Logf("fleetsim: farm: %d devices, %d records accepted, %d refused (%v)", len(devs), res.Stats.Acked, res.Stats.Dead, res.Stats.DeadReasons)

	// What the payer and the makers see.
	claims, err := srv.Claims(cfg.Month, srv.PayerToken)
	if err != nil {
		return res, err
	}
	res.Claims = claims
	if claims.Status == claim.StatusClosed {
		res.ClosedAt = time.Unix(claims.ClosedAt, 0)
	}
	all, err := srv.ClaimDevices(cfg.Month, srv.PayerToken, "")
	if err != nil {
		return res, err
	}
	byID := map[string]*claim.Device{}
	for i := range all {
		byID[all[i].DeviceID] = &all[i]
	}
	members := make([]member, len(devs))
	for i, fd := range devs {
		fd.Outcome = byID[fd.Device.ID().String()]
		members[i] = member{kind: fd.Kind.String(), id: fd.Device.ID(), late: fd.Stats.DeadReasons["late"]}
		token := srv.PayerToken
		if m, _ := srv.Maker(fd.Maker); m.Token != "" && fd.Kind != FarmFutureCert {
			token = m.Token // the maker's own view (an unattributed device is the payer's only)
		}
		if fd.View, _, err = srv.Device(fd.Device.ID(), token); err != nil {
			return res, err
		}
	}
	var kinds []string
	for _, k := range farmKinds() {
		kinds = append(kinds, k.String())
	}
	res.Table = confusion(kinds, members, all)
	if err := res.checkViews(srv, all); err != nil {
		return res, err
	}
	if cfg.Out != nil {
		res.Print(cfg.Out)
	}
	return res, res.Check()
}

// checkViews checks what each maker sees with its own token: its own devices, with the
// outcomes and reasons the payer sees, and none of another maker's.
func (r *FarmResult) checkViews(srv *fleetsim.Server, all []claim.Device) error {
	farmIDs := map[string]bool{}
	for _, fd := range r.Devices {
		if fd.Farm() {
			farmIDs[fd.Device.ID().String()] = true
		}
	}
	for _, m := range srv.Makers {
		if m.Token == "" {
			continue
		}
		own, err := srv.ClaimDevices(r.Month, m.Token, "")
		if err != nil {
			return err
		}
		var want []claim.Device
		for _, d := range all {
			if d.MakerID == m.ID {
				want = append(want, d)
			}
		}
		if len(own) != len(want) {
			return fmt.Errorf("fleetsim: farm: maker %s sees %d devices with its own token, the payer %d of its", m.ID, len(own), len(want))
		}
		for i, d := range own {
			w := want[i]
			if d.MakerID != m.ID || d.DeviceID != w.DeviceID || d.Outcome != w.Outcome || !slices.Equal(d.Reasons, w.Reasons) || len(d.Findings) != len(w.Findings) {
				return fmt.Errorf("fleetsim: farm: maker %s's own view of device %s… is %s %v (maker %q), the payer's %s %v",
					m.ID, d.DeviceID[:12], d.Outcome, d.Reasons, d.MakerID, w.Outcome, w.Reasons)
			}
			if m.ID != r.FarmMaker && farmIDs[d.DeviceID] {
				return fmt.Errorf("fleetsim: farm: maker %s sees the farm's device %s…", m.ID, d.DeviceID[:12])
			}
		}
		r.ViewsChecked = true
	}
	return nil
}

// Check checks the targets: no farm device paid, and every honest device with enough
// active days paid or held (the others ineligible).
func (r *FarmResult) Check() error {
	var bad []string
	elig := collector.DefaultEligibility()
	farmPaid := 0
	for _, fd := range r.Devices {
		out := claim.Outcome("not listed")
		if fd.Outcome != nil {
			out = fd.Outcome.Outcome
		}
		switch {
		case fd.Farm() && out == claim.Paid:
			farmPaid++
		case !fd.Farm() && activeDays(fd.Days, elig) >= elig.MinActiveDays && out != claim.Paid && out != claim.Held:
			bad = append(bad, fmt.Sprintf("honest device %d (%s, %d active days): %s %v", fd.Device.Index, fd.Maker, activeDays(fd.Days, elig), out, reasonsOf(fd.Outcome)))
		case !fd.Farm() && activeDays(fd.Days, elig) < elig.MinActiveDays && out != claim.Ineligible && fd.Outcome != nil:
			bad = append(bad, fmt.Sprintf("honest device %d (%s, %d active days): %s %v", fd.Device.Index, fd.Maker, activeDays(fd.Days, elig), out, reasonsOf(fd.Outcome)))
		}
	}
	if farmPaid > 0 {
		bad = append(bad, fmt.Sprintf("%d farm devices paid", farmPaid))
	}
	for _, row := range r.Claims.Rows {
		if row.MakerID == r.FarmMaker && row.Paid != 0 {
			bad = append(bad, fmt.Sprintf("%s: %d paid", row.MakerID, row.Paid))
		}
		if want, ok := r.Expected[row.MakerID]; ok && row.Paid+row.Held != want {
			bad = append(bad, fmt.Sprintf("%s: collector %d paid + %d held, expected %d", row.MakerID, row.Paid, row.Held, want))
		}
	}
	if len(bad) > 0 {
		slices.Sort(bad)
		return fmt.Errorf("%w: %v", fleetsim.ErrClaimsMismatch, bad)
	}
	return nil
}

func reasonsOf(d *claim.Device) []string {
	if d == nil {
		return nil
	}
	return d.Reasons
}

// Row returns the confusion row of a kind.
func (r *FarmResult) Row(k FarmKind) *ConfusionRow {
	for _, row := range r.Table {
		if row.Kind == k.String() {
			return row
		}
	}
	return newRow(k.String())
}

// Print writes the confusion table, one device's view of each kind, the claims, and
// what is caught and what is not.
func (r *FarmResult) Print(w io.Writer) {
	m := r.Month
	farm := 0
	for _, fd := range r.Devices {
		if fd.Farm() {
			farm++
		}
	}
	fmt.Fprintf(w, "farm %s: %d devices (%d honest, %d of %s; %d sold handsets registered); %d records accepted, %d refused %v\n", m,
		len(r.Devices), len(r.Devices)-farm, farm, r.FarmMaker, r.Registered, r.Stats.Acked, r.Stats.Dead, r.Stats.DeadReasons)
	when := "still open"
	if !r.ClosedAt.IsZero() {
		when = "closed at " + r.ClosedAt.In(time.FixedZone("", 8*3600)).Format("2006-01-02 15:04 UTC+8")
	}
	fmt.Fprintf(w, "outcomes by true kind (GET /v1/claims/devices?month=%s as the payer; the month %s):\n", m, when)
	PrintConfusion(w, r.Table)
	if r.LateSkipped {
		fmt.Fprintln(w, "  (no late devices: an external collector's clock cannot be moved past the month's close)")
	}
	fmt.Fprintf(w, "  %-14s %4s %-8s %s\n", "kind", "n", "maker", "GET /v1/devices/{id} of one (epochs; months), as its maker (the payer for an unattributed one)")
	for _, k := range farmKinds() {
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
		if len(ms) == 0 {
			ms = []string{"no accepted day"}
		}
		attributed := "attributed"
		if !v.Attributed {
			attributed = "unattributed"
		}
		fmt.Fprintf(w, "  %-14s %4d %-8s %s; %s; %s\n", k, len(some), fd.Maker, attributed, strings.Join(ep, "; "), strings.Join(ms, ", "))
	}
	fleetsim.PrintClaims(w, r.Claims, r.Expected)
	printDistances(w, r.Claims)
	if r.ViewsChecked {
		fmt.Fprintf(w, "  each maker's own GET /v1/claims/devices lists its own devices with the payer's outcomes and reasons: %s sees its farm, the honest makers none of it\n", r.FarmMaker)
	}
	farmPaid := 0
	for _, fd := range r.Devices {
		if fd.Farm() && fd.Outcome != nil && fd.Outcome.Outcome == claim.Paid {
			farmPaid++
		}
	}
	fmt.Fprintf(w, "  target: 0 farm devices paid (%d paid); every honest device with >= 10 active days paid or held\n", farmPaid)
	fmt.Fprintln(w, "  caught: identical counters on many phones (clone), 24 h days (saturated), a month minted in one burst or long after")
	fmt.Fprintln(w, "  (burst, backfill), a month reported again by a new epoch (replayed_epoch), many keys on one serial tag (many_keys):")
	fmt.Fprintln(w, "  held until the payer releases or denies them; another maker's serial tag: refused (serial_tag_of_another_maker),")
	fmt.Fprintln(w, "  paid to nobody; a made-up serial tag: unregistered; a certificate from the future: bad_cert (the device unattributed);")
	fmt.Fprintln(w, "  minted_at 0 or in 2100: implausible_mint; dates after the server's: future_date; a month uploaded after it closed: late.")
	fmt.Fprintln(w, "  not caught: a maker that drives real sold handsets by robot with natural-looking counters (drawn per phone and day,")
	fmt.Fprintln(w, "  minted at each midnight) is only caught statistically: its distribution of active days and unlocks against the")
	fmt.Fprintln(w, "  rest of the fleet (total variation distance, with >= 100 devices each side) flags the maker, not a device; proving")
	fmt.Fprintln(w, "  that a human used the phone (hardware attestation) is a separate issue.")
}

// activeDays counts the days the eligibility makes active.
func activeDays(days []proof.ActivityDay, e collector.Eligibility) int {
	n := 0
	for i := range days {
		if e.Active(&days[i]) {
			n++
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
