// Package timetrust decides which server_time the device believes: a plausible time that
// agrees with what it already trusts, with its own wall clock, or with a second answer
// received later (docs/protocol.md, "Trusted time").
package timetrust

import (
	"fmt"
	"time"
)

// Thresholds of docs/protocol.md, "Trusted time".
const (
	// Agree is how far two readings of time may differ and still agree (the same
	// threshold as the clock-jumped flag).
	Agree = 5 * time.Minute
	// ConfirmAfter is how long after a disputed server_time a second answer must come
	// to confirm it: a host whose clock stepped, or a proxy that lies for a moment,
	// must keep lying across two separate uploads this far apart to be believed.
	ConfirmAfter = 15 * time.Minute
	// BeforeBuild is how far before the build time a server_time may be: none can be
	// much earlier than the code that reads it.
	BeforeBuild = 24 * time.Hour
	// AfterBuild bounds a server_time after the build time: a handset's lifetime.
	AfterBuild = 30 * 365 * 24 * time.Hour
)

// DefaultBuild is the build time assumed when the binary carries none (tests and
// unstamped builds): the start of the year this rule was written.
var DefaultBuild = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// Anchor is a believed server_time and the CLOCK_BOOTTIME at which it was received.
type Anchor struct {
	ServerTime int64
	At         time.Duration
}

// Time returns trusted time at now (CLOCK_BOOTTIME) according to the anchor.
func (a Anchor) Time(now time.Duration) time.Time {
	return time.Unix(a.ServerTime, 0).Add(now - a.At)
}

// Outcome is what Observe made of a server_time.
type Outcome int

// Outcomes of Observe.
const (
	// Ignored: outside the plausible bounds; nothing changed.
	Ignored Outcome = iota
	// Held: it disputes trusted time; kept as a candidate until a later answer confirms it.
	Held
	// Believed: it agrees with trusted time (or is the boot's first and agrees with the
	// wall clock); the anchor is refreshed.
	Believed
	// Corrected: a disputed time that the wall clock corroborates or a later answer
	// confirmed; the anchor moves by more than Agree.
	Corrected
)

func (o Outcome) String() string {
	switch o {
	case Ignored:
		return "ignored"
	case Held:
		return "held"
	case Believed:
		return "believed"
	case Corrected:
		return "corrected"
	}
	return fmt.Sprintf("outcome(%d)", int(o))
}

// Judge holds the believed anchor and the candidate of one boot. It is not safe for
// concurrent use.
type Judge struct {
	notBefore, notAfter int64
	anchor              Anchor
	ok                  bool
	cand                Anchor
	candOK              bool
}

// New returns a judge with no anchor for a binary built at build (zero: DefaultBuild).
func New(build time.Time) *Judge {
	if build.IsZero() {
		build = DefaultBuild
	}
	return &Judge{notBefore: build.Add(-BeforeBuild).Unix(), notAfter: build.Add(AfterBuild).Unix()}
}

// Restore sets the anchor believed earlier in this boot (kept in the store).
func (j *Judge) Restore(a Anchor) { j.anchor, j.ok, j.candOK = a, true, false }

// Anchor returns the believed anchor, if any.
func (j *Judge) Anchor() (Anchor, bool) { return j.anchor, j.ok }

// Candidate returns the disputed server_time waiting for confirmation, if any.
func (j *Judge) Candidate() (Anchor, bool) { return j.cand, j.candOK }

// Observe judges serverTime, received at CLOCK_BOOTTIME at when the wall clock read wall,
// and says why in a sentence for the log.
func (j *Judge) Observe(serverTime int64, at time.Duration, wall time.Time) (Outcome, string) {
	st := time.Unix(serverTime, 0).UTC()
	switch {
	case serverTime < j.notBefore:
		return Ignored, fmt.Sprintf("server_time %s is before the build (%s)", st.Format(time.RFC3339), time.Unix(j.notBefore, 0).UTC().Add(BeforeBuild).Format(time.DateOnly))
	case serverTime > j.notAfter:
		return Ignored, fmt.Sprintf("server_time %s is 30 years past the build", st.Format(time.RFC3339))
	}
	got := Anchor{ServerTime: serverTime, At: at}
	agreesWall := near(st, wall)
	if j.ok && near(st, j.anchor.Time(at)) {
		j.anchor, j.candOK = got, false
		return Believed, "agrees with trusted time"
	}
	if !j.ok && agreesWall {
		j.anchor, j.ok, j.candOK = got, true, false
		return Believed, "agrees with the wall clock"
	}
	if agreesWall {
		was := j.anchor.Time(at).UTC()
		j.anchor, j.candOK = got, false
		return Corrected, fmt.Sprintf("server_time %s corrects trusted time %s; the wall clock agrees", st.Format(time.RFC3339), was.Format(time.RFC3339))
	}
	if j.candOK && near(st, j.cand.Time(at)) {
		if at-j.cand.At >= ConfirmAfter {
			j.anchor, j.ok, j.candOK = got, true, false
			return Corrected, fmt.Sprintf("server_time %s confirmed %v after the first", st.Format(time.RFC3339), (at - j.cand.At).Round(time.Second))
		}
		return Held, fmt.Sprintf("server_time %s agrees with the one held %v ago", st.Format(time.RFC3339), (at - j.cand.At).Round(time.Second))
	}
	j.cand, j.candOK = got, true
	ref := "the wall clock " + wall.UTC().Format(time.RFC3339)
	if j.ok {
		ref = "trusted time " + j.anchor.Time(at).UTC().Format(time.RFC3339)
	}
	return Held, fmt.Sprintf("server_time %s disputes %s; held until confirmed %v later", st.Format(time.RFC3339), ref, ConfirmAfter)
}

func near(a, b time.Time) bool {
	d := a.Sub(b)
	return d <= Agree && -d <= Agree
}
