package sources

import "fmt"

// EventKind is what a source observed. Sources report what the platform says, never
// the content of input: no key codes, no coordinates.
type EventKind uint8

// Event kinds.
const (
	EventScreenOn    EventKind = iota + 1 // the screen turned on
	EventScreenOff                        // the screen turned off
	EventLocked                           // the device locked
	EventUnlocked                         // the device unlocked
	EventInput                            // the owner touched the phone or pressed a key
	EventIdle                             // the platform's idle hint turned on
	EventActive                           // the platform's idle hint turned off
	EventSuspend                          // the system is about to sleep
	EventResume                           // the system woke up
	EventAvailable                        // the source can now report Caps
	EventUnavailable                      // the source can no longer report Caps
)

var eventNames = map[EventKind]string{
	EventScreenOn: "screen_on", EventScreenOff: "screen_off", EventLocked: "locked",
	EventUnlocked: "unlocked", EventInput: "input", EventIdle: "idle", EventActive: "active",
	EventSuspend: "suspend", EventResume: "resume", EventAvailable: "available",
	EventUnavailable: "unavailable",
}

func (k EventKind) String() string {
	if s, ok := eventNames[k]; ok {
		return s
	}
	return fmt.Sprintf("event(%d)", uint8(k))
}

// Caps are what a source can tell: they decide which conditions of "interactive"
// (docs/eligibility.md) apply. Without any input or idle source, screen on and unlocked suffice.
type Caps uint8

// Capabilities of a source.
const (
	CapScreen Caps = 1 << iota // reports screen on and off
	CapLock                    // reports locked and unlocked
	CapInput                   // reports input events
	CapIdle                    // reports an idle hint
)

// Event is one observation of a source.
type Event struct {
	Source string // "amos-power", "logind", "evdev", "api"
	Kind   EventKind
	Caps   Caps // for EventAvailable and EventUnavailable
}

func (e Event) String() string {
	if e.Kind == EventAvailable || e.Kind == EventUnavailable {
		return fmt.Sprintf("%s %s caps=%04b", e.Source, e.Kind, e.Caps)
	}
	return e.Source + " " + e.Kind.String()
}

// Emit delivers an event from a source to the agent. It may block briefly; it never
// drops an event.
type Emit func(Event)
