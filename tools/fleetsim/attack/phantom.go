package attack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"amos.example/amosd/collector"
	"amos.example/amosd/collector/sales"
	"amos.example/amosd/internal/devattest"
	"amos.example/amosd/tools/fleetsim"
)

// The true kinds of the phantom scenario.
const (
	PhantomHonest     = "honest"
	PhantomFabricated = "phantom-fabricated"
	PhantomStolen     = "phantom-stolen"
)

// PhantomConfig configures the phantom scenario (zero values take the defaults named).
type PhantomConfig struct {
	Month        collector.Month
	Seed         uint64
	Offset       int    // +480
	PhantomMaker string // the maker that makes phantoms; one of the server's ("phantomco")
	Phantoms     int    // 2,000 keys certified by the phantom maker
	// StolenShare of the phantoms (0.10) carry serial tags of the honest makers'
	// registered handsets instead of fabricated ones; at most one phantom per honest
	// handset. Negative: none.
	StolenShare float64
	Honest      int // 1,000 sold handsets of the other makers, registered
	Workers     int // 32
	// Attestation is every maker's attestation mode at the collector ("" or off:
	// none, the scenario as before attestation). Otherwise the honest handsets' keys
	// are P-256 keys whose geneses carry chains from Authority, and the phantom maker
	// adds Dormant keys of the attested kinds (PhantomUnattested, PhantomOwnRoot,
	// PhantomReplayedChain). An in-process Server must have been started with
	// AttestationPolicy(Authority, Attestation, …); an external collector must trust
	// Authority's root and give every maker this mode.
	Attestation collector.AttestationMode
	Authority   *devattest.Authority
	// Dormant are the phantom maker's handsets registered as sold that never report,
	// for whose serial tags it certifies keys of the attested kinds, in turn (300);
	// only with attestation.
	Dormant int
	Server  *fleetsim.Server
	Out     io.Writer
	Logf    func(string, ...any)
}

// PhantomResult is what the phantom scenario saw.
type PhantomResult struct {
	Month                      collector.Month
	Honest, Fabricated, Stolen int
	Minted                     int
	Stats                      fleetsim.SyncStats
	Elapsed                    time.Duration
	Expected                   map[string]int // honest devices with enough active days, by maker (paid or held)
	Claims                     *collector.Claims
	Table                      []*ConfusionRow // by true kind: honest, phantom-fabricated, phantom-stolen
	PhantomMaker               string
	// ActiveEnough are the phantoms (of each kind) with enough active days to be paid
	// were they sold handsets.
	ActiveEnough map[string]int
	Attestation  collector.AttestationMode // "" or off: none
	Dormant      int                       // keys of the attested kinds
	Authority    string                    // the name of the development root that attests the honest keys
}

// RunPhantom plays the phantom attack against a real collector: a maker certifies
// thousands of keys with fabricated serial tags (and a share with serial tags of other
// makers' sold handsets), whose months are drawn like honest phones' (NewPlan), minted
// at each local midnight and uploaded like honest ones, beside an honest fleet whose
// handsets are registered as sold. It then sorts the payer's per-device outcomes by
// true kind (a confusion table) and checks the targets: no phantom paid, and the
// honest fleet paid (or held) exactly as its eligibility says.
func RunPhantom(ctx context.Context, cfg PhantomConfig) (*PhantomResult, error) {
	if cfg.Offset == 0 {
		cfg.Offset = 480
	}
	if cfg.PhantomMaker == "" {
		cfg.PhantomMaker = "phantomco"
	}
	if cfg.Phantoms <= 0 {
		cfg.Phantoms = 2000
	}
	if cfg.StolenShare == 0 {
		cfg.StolenShare = 0.10
	}
	if cfg.Honest <= 0 {
		cfg.Honest = 1000
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 32
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	dormant, attesting := 0, Attesting(cfg.Attestation)
	var own *devattest.Authority // the phantom maker's own root
	if attesting {
		if cfg.Authority == nil {
			return nil, errors.New("fleetsim: phantom: attestation without an authority")
		}
		if dormant = cfg.Dormant; dormant <= 0 {
			dormant = 300
		}
		root := cfg.Authority.Root()
		var err error
		if own, err = devattest.New(root.NotBefore, root.NotAfter, cfg.PhantomMaker+" own attestation root"); err != nil {
			return nil, fmt.Errorf("fleetsim: phantom: %w", err)
		}
	}
	srv := cfg.Server
	if srv == nil {
		return nil, errors.New("fleetsim: phantom: no server")
	}
	if _, ok := srv.Maker(cfg.PhantomMaker); !ok {
		return nil, fmt.Errorf("fleetsim: phantom: maker %q is not the server's", cfg.PhantomMaker)
	}
	var honest []fleetsim.Maker
	for _, m := range srv.Makers {
		if m.ID != cfg.PhantomMaker {
			honest = append(honest, m)
		}
	}
	if len(honest) == 0 {
		return nil, errors.New("fleetsim: phantom: no honest maker besides the phantom maker")
	}
	stolen := 0
	if cfg.StolenShare > 0 {
		stolen = min(int(math.Round(cfg.StolenShare*float64(cfg.Phantoms))), cfg.Phantoms, cfg.Honest)
	}
	res := &PhantomResult{Month: cfg.Month, Honest: cfg.Honest, Fabricated: cfg.Phantoms - stolen, Stolen: stolen,
		Expected: map[string]int{}, PhantomMaker: cfg.PhantomMaker, ActiveEnough: map[string]int{}, Attestation: cfg.Attestation, Dormant: dormant}
	if attesting {
		res.Authority = cfg.Authority.Name()
	}
	for _, m := range honest {
		res.Expected[m.ID] = 0
	}
	elig := collector.DefaultEligibility()
	rng := rand.New(rand.NewPCG(cfg.Seed, 0xfa4707))
	saleRng := rand.New(rand.NewPCG(cfg.Seed, 0x5a1e6))
	days := cfg.Month.Last().Day()

	// The honest fleet first (registered as sold), then the phantoms: the first ones
	// with the serial tags of honest handsets, in turn, the others with made-up ones;
	// then, attested, the keys for the phantom maker's dormant handsets (registered).
	n := cfg.Honest + cfg.Phantoms + dormant
	f := &fleetsim.Fleet{Server: srv, Month: cfg.Month, Offset: cfg.Offset, Workers: cfg.Workers, KeySeed: cfg.Seed + 2<<32,
		Logf: cfg.Logf, Specs: make([]fleetsim.FleetSpec, n)}
	defer f.Close()
	kinds := make([]string, n)
	var sold []sales.Sale
	for i := range f.Specs {
		s := &f.Specs[i]
		switch {
		case i < cfg.Honest:
			kinds[i] = PhantomHonest
			m := honest[i%len(honest)].ID
			*s = fleetsim.FleetSpec{Maker: m, Serial: fleetsim.SerialTag(cfg.Seed, fmt.Sprint("phantom scenario honest ", i)),
				Plan: fleetsim.NewPlan(rng, m, days).In(cfg.Month)}
			sold = append(sold, fleetsim.SaleOf(saleRng, i, s.Serial, m, cfg.Month, s.Plan.Days))
			if s.Plan.ActiveDays(elig) >= elig.MinActiveDays {
				res.Expected[m]++
			}
			if attesting {
				if err := attestedKey(s, f.KeySeed, i, cfg.Authority, nil); err != nil {
					return nil, err
				}
			}
			continue
		case i >= cfg.Honest+cfg.Phantoms:
			j := i - cfg.Honest - cfg.Phantoms
			kinds[i] = dormantKinds[j%len(dormantKinds)]
			*s = fleetsim.FleetSpec{Maker: cfg.PhantomMaker, Serial: fleetsim.SerialTag(cfg.Seed, fmt.Sprint("phantom scenario dormant ", j)),
				Plan: fleetsim.NewPlan(rng, cfg.PhantomMaker, days).In(cfg.Month)}
			sold = append(sold, fleetsim.SaleOf(saleRng, i, s.Serial, cfg.PhantomMaker, cfg.Month, s.Plan.Days))
			var err error
			switch kinds[i] {
			case PhantomUnattested:
				err = attestedKey(s, f.KeySeed, i, nil, nil)
			case PhantomOwnRoot: // claiming the honest builds' boot key: only the root is wrong
				err = attestedKey(s, f.KeySeed, i, own, devattest.BootKey(cfg.Authority.Name()))
			case PhantomReplayedChain:
				err = attestedKey(s, f.KeySeed, i, nil, nil)
				s.Chain = slices.Clone(f.Specs[j%cfg.Honest].Chain)
			}
			if err != nil {
				return nil, err
			}
			if s.Plan.ActiveDays(elig) >= elig.MinActiveDays {
				res.ActiveEnough[kinds[i]]++
			}
			continue
		case i-cfg.Honest < stolen:
			kinds[i] = PhantomStolen
			s.Serial = f.Specs[i-cfg.Honest].Serial
		default:
			kinds[i] = PhantomFabricated
			s.Serial = fleetsim.SerialTag(cfg.Seed, fmt.Sprint("phantom fabricated ", i))
		}
		s.Maker = cfg.PhantomMaker
		s.Plan = fleetsim.NewPlan(rng, cfg.PhantomMaker, days).In(cfg.Month)
		if s.Plan.ActiveDays(elig) >= elig.MinActiveDays {
			res.ActiveEnough[kinds[i]]++
		}
	}
	f.SetClock(f.GenesisAt())
	if err := srv.MonthOpen(cfg.Month, cfg.Offset); err != nil {
		return nil, err
	}
	if err := fleetsim.Register(srv, sold, cfg.Logf); err != nil {
		return nil, err
	}
	if err := f.Start(ctx); err != nil {
		return nil, err
	}
	if err := f.Play(ctx); err != nil {
		return nil, err
	}
	res.Minted = f.Minted()
	res.Stats = f.Stats
	res.Elapsed = f.Elapsed()

	f.SetClock(cfg.Month.Last().Next().Start(cfg.Offset).Add(2 * time.Hour))
	claims, err := srv.Claims(cfg.Month, srv.PayerToken)
	if err != nil {
		return res, err
	}
	res.Claims = claims
	devs, err := srv.ClaimDevices(cfg.Month, srv.PayerToken, "")
	if err != nil {
		return res, err
	}
	members := make([]member, n)
	for i, d := range f.Devices {
		members[i] = member{kind: kinds[i], id: d.ID()}
	}
	res.Table = confusion(append([]string{PhantomHonest}, phantomKinds...), members, devs)
	if cfg.Out != nil {
		res.Print(cfg.Out)
	}
	return res, res.Check()
}

// Row returns the confusion row of a true kind.
func (r *PhantomResult) Row(kind string) *ConfusionRow {
	for _, row := range r.Table {
		if row.Kind == kind {
			return row
		}
	}
	return newRow(kind)
}

// phantomKinds are the phantom scenario's kinds of phantom, in the table's order.
var phantomKinds = append([]string{PhantomFabricated, PhantomStolen}, dormantKinds[:]...)

// ErrPhantomsPaid: the claims are what the simulation expects of the honest fleet, but
// phantoms were paid (with attestation preferred, the registry alone pays the attested
// kinds: the reason for required).
var ErrPhantomsPaid = errors.New("phantoms paid")

// Check checks the targets: no phantom paid (the phantom maker's claim is zero; a
// held phantom is not paid either), and each honest maker's paid and held devices add
// up to its devices with enough active days; attested, every honest device the claim
// lists is attested and no phantom is. Phantoms paid and nothing else wrong is
// ErrPhantomsPaid; anything else is fleetsim.ErrClaimsMismatch.
func (r *PhantomResult) Check() error {
	var bad, paid []string
	for _, k := range phantomKinds {
		if n := r.Row(k).Paid(); n != 0 {
			paid = append(paid, fmt.Sprintf("%d %s devices paid", n, k))
		}
	}
	attested := 0
	for _, row := range r.Claims.Rows {
		want, honest := r.Expected[row.MakerID]
		switch {
		case row.MakerID == r.PhantomMaker && row.Paid != 0:
			paid = append(paid, fmt.Sprintf("%s: %d paid", row.MakerID, row.Paid))
		case honest && row.Paid+row.Held != want:
			bad = append(bad, fmt.Sprintf("%s: collector %d paid + %d held, expected %d", row.MakerID, row.Paid, row.Held, want))
		}
		if honest {
			attested += row.Attested
		} else if row.MakerID == r.PhantomMaker && row.Attested != 0 {
			bad = append(bad, fmt.Sprintf("%s: %d devices attested", row.MakerID, row.Attested))
		}
	}
	if h := r.Row(PhantomHonest); Attesting(r.Attestation) && attested != h.Devices-h.NotListed {
		bad = append(bad, fmt.Sprintf("honest makers: %d devices attested, expected %d (every one listed): does the collector trust the development root %q?",
			attested, h.Devices-h.NotListed, r.Authority))
	}
	if r.Stats.Dead > 0 {
		bad = append(bad, fmt.Sprintf("%d records refused: %v", r.Stats.Dead, r.Stats.DeadReasons))
	}
	slices.Sort(bad)
	switch {
	case len(bad) > 0:
		return fmt.Errorf("%w: %s", fleetsim.ErrClaimsMismatch, strings.Join(append(bad, paid...), "; "))
	case len(paid) > 0:
		return fmt.Errorf("%w: %s", ErrPhantomsPaid, strings.Join(paid, "; "))
	}
	return nil
}

// PhantomsPaid is the number of phantom devices paid, of every kind.
func (r *PhantomResult) PhantomsPaid() int {
	n := 0
	for _, k := range phantomKinds {
		n += r.Row(k).Paid()
	}
	return n
}

// Print writes the volumes, the confusion table, the claims and the phantom maker's
// distribution distance.
func (r *PhantomResult) Print(w io.Writer) {
	s := r.Stats
	fmt.Fprintf(w, "phantom %s: %s certifies %d keys (%d with made-up serial tags, %d with serial tags of other makers' sold handsets), beside %d honest sold handsets\n",
		r.Month, r.PhantomMaker, r.Fabricated+r.Stolen, r.Fabricated, r.Stolen, r.Honest)
	if Attesting(r.Attestation) {
		fmt.Fprintf(w, "  attestation %s for every maker; the honest handsets' P-256 keys attested by the development root %q, which the collector trusts\n", r.Attestation, r.Authority)
		fmt.Fprintf(w, "  and %s certifies %d P-256 keys made in software for the serial tags of its own handsets registered as sold that never report: %d %s (no chain), %d %s (a chain from its own root), %d %s (an honest handset's chain)\n",
			r.PhantomMaker, r.Dormant, r.Row(PhantomUnattested).Devices, PhantomUnattested, r.Row(PhantomOwnRoot).Devices, PhantomOwnRoot,
			r.Row(PhantomReplayedChain).Devices, PhantomReplayedChain)
	}
	fmt.Fprintf(w, "  every month drawn like an honest phone's (%d fabricated and %d stolen phantoms with >= 10 active days", r.ActiveEnough[PhantomFabricated], r.ActiveEnough[PhantomStolen])
	if Attesting(r.Attestation) {
		fmt.Fprintf(w, "; %d unattested, %d own-root and %d replayed-chain", r.ActiveEnough[PhantomUnattested], r.ActiveEnough[PhantomOwnRoot], r.ActiveEnough[PhantomReplayedChain])
	}
	fmt.Fprintln(w, "), minted at each local midnight, uploaded like an honest phone")
	fmt.Fprintf(w, "  records: %d minted, %d accepted, %d refused; %d requests in %s\n", r.Minted, s.Acked, s.Dead, s.Requests, r.Elapsed.Round(time.Millisecond))
	fmt.Fprintf(w, "outcomes by true kind (GET /v1/claims/devices?month=%s as the payer):\n", r.Month)
	PrintConfusion(w, r.Table)
	fleetsim.PrintClaims(w, r.Claims, r.Expected)
	if Attesting(r.Attestation) && r.Claims != nil {
		var parts []string
		for _, row := range r.Claims.Rows {
			parts = append(parts, fmt.Sprintf("%s %d", row.MakerID, row.Attested))
		}
		fmt.Fprintf(w, "  attested (each row's device keys whose attestation holds): %s\n", strings.Join(parts, ", "))
	}
	printDistances(w, r.Claims)
	fmt.Fprintf(w, "  target: 0 phantoms paid (%d paid); honest paid or held exactly as expected", r.PhantomsPaid())
	if Attesting(r.Attestation) {
		fmt.Fprint(w, ", every honest device listed attested")
	}
	fmt.Fprintln(w)
}

// printDistances writes each maker's distribution distance from the rest of the fleet.
func printDistances(w io.Writer, c *collector.Claims) {
	if c == nil {
		return
	}
	fmt.Fprintln(w, "  maker distribution distance (total variation from the rest of the fleet; flagged above the threshold, with >= 100 devices each side):")
	for _, row := range c.Rows {
		d := row.Distribution
		if d == nil {
			fmt.Fprintf(w, "    %-16s no device\n", row.MakerID)
			continue
		}
		flag := "not flagged"
		if d.Flagged {
			flag = "FLAGGED"
		}
		fmt.Fprintf(w, "    %-16s %6d devices: active days %.3f, unlocks %.3f (threshold %.2f): %s\n", row.MakerID, d.Devices, d.ActiveDays, d.Unlocks, d.Threshold, flag)
	}
}
