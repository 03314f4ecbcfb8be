package outagesim

import (
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"time"

	"amos.example/amosd/collector/httpapi"
	"amos.example/amosd/transport"
)

// OutageMode is what devices get from the collector during the outage.
type OutageMode uint8

// Outage modes.
const (
	// OutageDown: no answer (connection refused, timeouts) or a 5xx without
	// Retry-After: the agent backs off on its own schedule.
	OutageDown OutageMode = iota
	// OutageRetryAfter: 503 with Retry-After in seconds (OutageConfig.RetryAfter).
	OutageRetryAfter
	// OutageRetryDate: 503 with Retry-After as an HTTP date, the end of the outage.
	OutageRetryDate
)

var outageModeNames = [...]string{"down", "retry-after", "retry-date"}

func (m OutageMode) String() string { return outageModeNames[m] }

// ParseOutageMode parses down, retry-after or retry-date.
func ParseOutageMode(s string) (OutageMode, error) {
	for i, n := range outageModeNames {
		if n == s {
			return OutageMode(i), nil
		}
	}
	return 0, fmt.Errorf("outage mode %q: want down, retry-after or retry-date", s)
}

// OutageConfig configures the outage scenario. Zero values take the defaults named.
type OutageConfig struct {
	Devices int    // 1,000,000
	Seed    uint64 // schedules (the backoff's own randomization uses its library's generator)
	Offset  int    // utc_offset_minutes of the fleet: +480
	// Start is the local time of day the outage begins (21h), Length its duration (6h).
	Start, Length time.Duration
	Mode          OutageMode
	RetryAfter    time.Duration // OutageRetryAfter's value: 1h
	// Awake is the share of phones awake at local midnight (0.3): their midnight alarm
	// mints and uploads within seconds. The others are suspended: the timerfd of the
	// alarm (CLOCK_REALTIME, not an _ALARM clock) fires at their first wake-up after
	// midnight, exponentially distributed with mean WakeMean (15 min), at most 8 h.
	Awake    float64
	WakeMean time.Duration
	// Capacity is how many requests a second the collector serves (0: unlimited);
	// beyond it httpapi answers 503 with Retry-After: 5 (all in-flight slots taken).
	Capacity int
	// SyncSpread is the agent's sync.spread: a random delay in [0, SyncSpread)
	// between a midnight mint and its upload (config.DefaultSyncSpread on a handset);
	// 0 uploads at once, as the agent did before sync.spread existed.
	SyncSpread time.Duration
	// InitialBackoff and MaxBackoff are the agent's sync.initial_backoff and
	// sync.max_backoff (30 s, 6 h).
	InitialBackoff, MaxBackoff time.Duration
	Out                        io.Writer // the report; nil for none
	CSV                        io.Writer // per-minute requests as CSV; nil for none
}

func (c *OutageConfig) defaults() {
	if c.Devices <= 0 {
		c.Devices = 1_000_000
	}
	if c.Offset == 0 {
		c.Offset = 480
	}
	if c.Start == 0 {
		c.Start = 21 * time.Hour
	}
	if c.Length == 0 {
		c.Length = 6 * time.Hour
	}
	if c.RetryAfter == 0 {
		c.RetryAfter = time.Hour
	}
	if c.Awake == 0 {
		c.Awake = 0.3
	}
	if c.WakeMean == 0 {
		c.WakeMean = 15 * time.Minute
	}
	if c.InitialBackoff == 0 {
		c.InitialBackoff = transport.DefaultInitialBackoff
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = transport.DefaultMaxBackoff
	}
}

// OutageResult is what the outage scenario measured. Times are offsets from the start
// of the simulation, which is local noon the day before the steady window.
type OutageResult struct {
	Config           OutageConfig
	PerMinute        []int32 // requests started in each simulated minute
	OutageStart      time.Duration
	OutageEnd        time.Duration
	SteadyRequests   int           // in the 24 h before the outage
	SteadyMean       float64       // requests a minute, in those 24 h
	SteadyPeak       int           // the busiest minute of those 24 h
	SteadyPeakAt     time.Duration // its start
	Peak             int           // the busiest minute from the outage's start until drained
	PeakAt           time.Duration
	SteadyPeakSecond int // the busiest second of the normal day
	PeakSecond       int // the busiest second from the outage's start until drained
	PeakSecondAt     time.Duration
	Drained          time.Duration // when the last device with records queued at the end of the outage got them accepted
	Queued           int           // devices with records queued when the outage ended
	Requests, Failed int
	MaxBackingOff    int // devices in backoff at once, at most
	midnight         time.Duration
}

// RatioToSteadyPeak is the outage's busiest minute over the normal day's busiest.
func (r *OutageResult) RatioToSteadyPeak() float64 {
	return float64(r.Peak) / float64(max(r.SteadyPeak, 1))
}

// RatioToSteadyMean is the outage's busiest minute over the normal day's mean minute.
func (r *OutageResult) RatioToSteadyMean() float64 {
	return float64(r.Peak) / math.Max(r.SteadyMean, 1e-9)
}

// DrainTime is how long after the end of the outage the last queue emptied.
func (r *OutageResult) DrainTime() time.Duration { return max(r.Drained-r.OutageEnd, 0) }

// event kinds
const (
	evMidnight uint8 = iota // every device that had interaction mints
	evMint                  // one device mints (and pokes its sync loop)
	evTimer                 // one device's backoff timer fires
	evOutageEnd
)

type event struct {
	t    int64 // ms since the start
	dev  int32
	kind uint8
}

// eventHeap is a binary min-heap on t.
type eventHeap []event

func (h *eventHeap) push(e event) {
	*h = append(*h, e)
	s := *h
	i := len(s) - 1
	for i > 0 {
		p := (i - 1) / 2
		if s[p].t <= s[i].t {
			break
		}
		s[p], s[i] = s[i], s[p]
		i = p
	}
}

func (h *eventHeap) pop() event {
	s := *h
	top := s[0]
	n := len(s) - 1
	s[0] = s[n]
	s = s[:n]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < n && s[l].t < s[m].t {
			m = l
		}
		if r < n && s[r].t < s[m].t {
			m = r
		}
		if m == i {
			break
		}
		s[m], s[i] = s[i], s[m]
		i = m
	}
	*h = s
	return top
}

// usage classes: the chance that a phone had interaction on a given day.
var dailyUse = []struct{ share, p float64 }{{0.60, 0.95}, {0.25, 0.6}, {0.10, 0.2}, {0.05, 0}}

// RunOutage simulates the fleet's sync schedule around a collector outage, at the
// level of each device's sync loop (agent/sync.go): a virtual clock and an event heap,
// no TLS. Each device mints at its local midnight if it had interaction that day and
// uploads at once unless its backoff timer is armed (then the timer decides); a failed
// attempt arms the timer with the real transport.Backoff the agent uses (30 s initial,
// ×2, ±50 %, 6 h cap), a Retry-After replacing the drawn wait exactly as sync.go does;
// a success resets it. Network-up events (which retry at once) are not modelled.
func RunOutage(cfg OutageConfig) (*OutageResult, error) {
	cfg.defaults()
	if cfg.Length <= 0 || cfg.Start < 0 || cfg.Start >= 24*time.Hour {
		return nil, errors.New("fleetsim: outage: start must be a time of day and length positive")
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0xda3e39cb94b95bdb))
	n := cfg.Devices
	// The simulation starts at local noon; midnights come at 12 h, 36 h, 60 h, …
	const ms = int64(time.Millisecond)
	midnight0 := 12 * time.Hour
	outStart := midnight0 + cfg.Start // the first such time of day at least 24 h in
	if outStart < 24*time.Hour {
		outStart += 24 * time.Hour
	}
	outEnd := outStart + cfg.Length
	end := outEnd + 30*time.Hour // midnights are generated up to here; retries run on until done
	res := &OutageResult{Config: cfg, OutageStart: outStart, OutageEnd: outEnd, midnight: midnight0}

	use := make([]float32, n)
	for i := range use {
		u := rng.Float64()
		for _, c := range dailyUse {
			if u < c.share {
				use[i] = float32(c.p)
				break
			}
			u -= c.share
		}
	}
	armed := make([]bool, n)
	queued := make([]uint16, n)
	waiting := make([]bool, n) // queued when the outage ended
	bos := make([]*transport.Backoff, n)
	var free []*transport.Backoff
	backingOff := 0

	var h eventHeap
	for m := midnight0; m < end; m += 24 * time.Hour {
		h.push(event{t: int64(m) / ms, kind: evMidnight, dev: -1})
	}
	h.push(event{t: int64(outEnd) / ms, kind: evOutageEnd, dev: -1})
	perMinute := make([]int32, int(end/time.Minute)+1)
	perSecond := make([]int32, int(end/time.Second)+1)
	curSec, inSec := int64(-1), 0
	drainLeft := -1

	attempt := func(i int32, t int64) {
		now := time.Duration(t * ms)
		minute := int(now / time.Minute)
		for minute >= len(perMinute) {
			perMinute = append(perMinute, 0)
		}
		perMinute[minute]++
		for int(t/1000) >= len(perSecond) {
			perSecond = append(perSecond, 0)
		}
		perSecond[t/1000]++
		res.Requests++
		// What the collector answers.
		var fail bool
		var retryAfter time.Duration = -1
		switch {
		case now >= outStart && now < outEnd:
			fail = true
			switch cfg.Mode {
			case OutageRetryAfter:
				retryAfter = cfg.RetryAfter
			case OutageRetryDate: // an HTTP date has whole seconds
				retryAfter = (outEnd - now + time.Second - 1).Truncate(time.Second)
			}
		case cfg.Capacity > 0:
			if sec := t / 1000; sec != curSec {
				curSec, inSec = sec, 0
			}
			inSec++
			if inSec > cfg.Capacity {
				fail, retryAfter = true, httpapi.RetryAfterBusy
			}
		}
		if !fail {
			queued[i] = 0
			if bos[i] != nil {
				bos[i].Reset()
				free = append(free, bos[i])
				bos[i] = nil
				backingOff--
			}
			if waiting[i] {
				waiting[i] = false
				if drainLeft--; drainLeft == 0 {
					res.Drained = now
				}
			}
			return
		}
		res.Failed++
		// agent/sync.go, attempt: a Retry-After replaces the next wait; else the backoff draws it.
		b := bos[i]
		if b == nil {
			if k := len(free); k > 0 {
				b, free = free[k-1], free[:k-1]
			} else {
				b = transport.NewBackoff(cfg.InitialBackoff, cfg.MaxBackoff)
			}
			bos[i] = b
			backingOff++
			res.MaxBackingOff = max(res.MaxBackingOff, backingOff)
		}
		if retryAfter >= 0 {
			b.RetryAfter(retryAfter)
		}
		wait := b.Next()
		armed[i] = true
		h.push(event{t: t + max(int64(wait)/ms, 1), dev: i, kind: evTimer})
	}

	for len(h) > 0 {
		e := h.pop()
		switch e.kind {
		case evMidnight:
			for i := range n {
				if rng.Float32() >= use[i] {
					continue // no interaction that day: nothing minted, nothing wakes
				}
				var d time.Duration
				if rng.Float64() < cfg.Awake {
					d = time.Duration(rng.Int64N(int64(3 * time.Second)))
				} else {
					d = min(time.Duration(rng.ExpFloat64()*float64(cfg.WakeMean)), 8*time.Hour)
				}
				if cfg.SyncSpread > 0 {
					d += time.Duration(rng.Int64N(int64(cfg.SyncSpread)))
				}
				h.push(event{t: e.t + int64(d)/ms, dev: int32(i), kind: evMint})
			}
		case evMint:
			queued[e.dev]++
			if !armed[e.dev] { // sync.go: during a backoff, the timer decides
				attempt(e.dev, e.t)
			}
		case evTimer:
			armed[e.dev] = false
			attempt(e.dev, e.t)
		case evOutageEnd:
			drainLeft = 0
			for i := range n {
				if queued[i] > 0 {
					waiting[i] = true
					drainLeft++
				}
			}
			res.Queued = drainLeft
			if drainLeft == 0 {
				res.Drained = outEnd
			}
		}
	}
	res.PerMinute = perMinute

	// The steady window: the 24 h before the outage.
	from, to := int((outStart-24*time.Hour)/time.Minute), int(outStart/time.Minute)
	for m := from; m < to; m++ {
		res.SteadyRequests += int(perMinute[m])
		if int(perMinute[m]) > res.SteadyPeak {
			res.SteadyPeak, res.SteadyPeakAt = int(perMinute[m]), time.Duration(m)*time.Minute
		}
	}
	res.SteadyMean = float64(res.SteadyRequests) / float64(to-from)
	last := max(int(res.Drained/time.Minute), int(outEnd/time.Minute))
	for m := to; m <= last && m < len(perMinute); m++ {
		if int(perMinute[m]) > res.Peak {
			res.Peak, res.PeakAt = int(perMinute[m]), time.Duration(m)*time.Minute
		}
	}
	for s := from * 60; s < to*60; s++ {
		res.SteadyPeakSecond = max(res.SteadyPeakSecond, int(perSecond[s]))
	}
	for s := to * 60; s < (last+1)*60 && s < len(perSecond); s++ {
		if int(perSecond[s]) > res.PeakSecond {
			res.PeakSecond, res.PeakSecondAt = int(perSecond[s]), time.Duration(s)*time.Second
		}
	}
	if cfg.Out != nil {
		res.Print(cfg.Out)
	}
	if cfg.CSV != nil {
		fmt.Fprintln(cfg.CSV, "minute,local_time,requests")
		for m, c := range perMinute {
			fmt.Fprintf(cfg.CSV, "%d,%s,%d\n", m, res.clock(time.Duration(m)*time.Minute), c)
		}
	}
	return res, nil
}

// clock shows an offset as day and local time: "d1 00:00" is the first midnight.
func (r *OutageResult) clock(d time.Duration) string {
	t := d + 12*time.Hour // the simulation starts at noon of day 0
	day := int(t / (24 * time.Hour))
	t -= time.Duration(day) * 24 * time.Hour
	return fmt.Sprintf("d%d %02d:%02d", day, int(t/time.Hour), int(t%time.Hour/time.Minute))
}

// Print writes the report.
func (r *OutageResult) Print(w io.Writer) {
	c := r.Config
	answer := map[OutageMode]string{
		OutageDown:       "no answer (refused or 5xx without Retry-After)",
		OutageRetryAfter: fmt.Sprintf("503 with Retry-After: %d", int(c.RetryAfter.Seconds())),
		OutageRetryDate:  "503 with Retry-After: <HTTP date of the end>",
	}[c.Mode]
	fmt.Fprintf(w, "outage: %d devices at UTC%+d:%02d; collector down %s to %s (%s), answering %s\n",
		c.Devices, c.Offset/60, c.Offset%60, r.clock(r.OutageStart), r.clock(r.OutageEnd), c.Length, answer)
	capacity := "unlimited"
	if c.Capacity > 0 {
		capacity = fmt.Sprintf("%d requests/s, then 503 Retry-After: 5", c.Capacity)
	}
	fmt.Fprintf(w, "  model: each device's sync loop (agent/sync.go) with the real transport.Backoff (%s initial, x2, +-50%%, %s cap);\n", c.InitialBackoff, c.MaxBackoff)
	fmt.Fprintf(w, "  midnight mint then upload; %.0f%% awake at midnight, the others at their first wake-up (mean %s); capacity %s\n",
		c.Awake*100, c.WakeMean, capacity)
	fmt.Fprintf(w, "  sync.spread %s: the midnight record is uploaded a random 0..%s after its mint\n", c.SyncSpread, c.SyncSpread)
	fmt.Fprintf(w, "  normal day (24 h before): %d requests, mean %.0f/min, peak %d/min at %s\n",
		r.SteadyRequests, r.SteadyMean, r.SteadyPeak, r.clock(r.SteadyPeakAt))
	fmt.Fprintf(w, "  outage and after: peak %d/min at %s; %d devices queued at the end, %d failed requests, at most %d devices backing off\n",
		r.Peak, r.clock(r.PeakAt), r.Queued, r.Failed, r.MaxBackingOff)
	fmt.Fprintf(w, "  peak/steady: %.2fx the normal day's peak minute, %.0fx its mean minute (goal <= 3x)\n", r.RatioToSteadyPeak(), r.RatioToSteadyMean())
	fmt.Fprintf(w, "  busiest second: %d/s normal day, %d/s outage and after (at %s:%02d)\n", r.SteadyPeakSecond, r.PeakSecond,
		r.clock(r.PeakSecondAt), int(r.PeakSecondAt%time.Minute/time.Second))
	fmt.Fprintf(w, "  drained %s after the end of the outage (at %s)\n", r.DrainTime().Round(time.Minute), r.clock(r.Drained))
	fmt.Fprintf(w, "  per hour, from 3 h before the outage (requests; busiest minute):\n")
	from := int((r.OutageStart - 3*time.Hour) / time.Hour)
	to := int(max(r.Drained, r.OutageEnd)/time.Hour) + 1
	for hr := from; hr <= to; hr++ {
		sum, peak := 0, 0
		for m := hr * 60; m < (hr+1)*60 && m < len(r.PerMinute); m++ {
			sum += int(r.PerMinute[m])
			peak = max(peak, int(r.PerMinute[m]))
		}
		mark := ""
		if at := time.Duration(hr) * time.Hour; at >= r.OutageStart && at < r.OutageEnd {
			mark = "  (down)"
		}
		fmt.Fprintf(w, "    %s  %9d  %8d/min%s\n", r.clock(time.Duration(hr)*time.Hour), sum, peak, mark)
	}
}
