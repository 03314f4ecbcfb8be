package sources

import "time"

// DefaultEvdevGlob is where Linux exposes input event devices (config `evdev_glob`).
const DefaultEvdevGlob = "/dev/input/event*"

// evdevSourceName is the source's name in events and in the configuration.
const evdevSourceName = "evdev"

// Linux input event types and codes (linux/input-event-codes.h) that decide whether a
// record is the owner's input.
const (
	evKey = 0x01 // EV_KEY: keys, buttons, BTN_TOUCH
	evRel = 0x02 // EV_REL: relative axes (mice, trackballs, wheels)
	evAbs = 0x03 // EV_ABS: absolute axes, touch screens and sensors alike

	absMTFirst = 0x2f // ABS_MT_SLOT, the first multi-touch code
	absMTLast  = 0x3d // ABS_MT_TOOL_Y, the last multi-touch code
)

// evdevCoalesce is the shortest interval between two EventInput of the source.
const evdevCoalesce = time.Second

// EvdevSource reports the owner's input from Linux input event devices (docs/eligibility.md,
// source "evdev"): key and touch events count as input; their codes, coordinates and
// values are looked at only to tell input from sensor readings, and are never kept.
// Devices that appear later are picked up through inotify. It never polls: Run sleeps
// in epoll_wait until a device, the device directory, a retry timer or the context
// wakes it.
type EvdevSource struct {
	glob string
	logf func(format string, args ...any)

	// coalesce is the shortest interval between two EventInput (evdevCoalesce).
	coalesce time.Duration
	// retryDelays are the one-shot retries of a device that could not be opened for
	// lack of permission right after it appeared: ueventd or udev sets its owner and
	// mode a moment later, which an IN_ATTRIB normally reports first.
	retryDelays []time.Duration
}

// NewEvdevSource returns the source for the devices matching glob (DefaultEvdevGlob
// when empty). logf receives its few log lines; nil discards them.
func NewEvdevSource(glob string, logf func(format string, args ...any)) *EvdevSource {
	if glob == "" {
		glob = DefaultEvdevGlob
	}
	if logf == nil {
		logf = func(string, ...any) {}
	}
	return &EvdevSource{
		glob:        glob,
		logf:        logf,
		coalesce:    evdevCoalesce,
		retryDelays: []time.Duration{100 * time.Millisecond, time.Second, 5 * time.Second},
	}
}

// Name returns "evdev".
func (s *EvdevSource) Name() string { return evdevSourceName }

// isInput reports whether an input event record of type typ and code code is the
// owner's use of the phone: any key or button (touch screens report BTN_TOUCH too),
// relative motion, and multi-touch axes. Synchronisation, miscellaneous, switch and
// LED events are not, and neither are the single-touch absolute axes, which phones use
// for accelerometers, gyroscopes and proximity sensors (ABS_X, ABS_Y, ABS_Z,
// ABS_DISTANCE, ...).
func isInput(typ, code uint16) bool {
	switch typ {
	case evKey, evRel:
		return true
	case evAbs:
		return code >= absMTFirst && code <= absMTLast
	}
	return false
}

// inputCoalescer lets through at most one input per window: the first input after a
// quiet window passes at once, and further input within the same window is folded into
// it. Folded input does not extend the window, so that continuous use is reported once
// per window.
type inputCoalescer struct {
	window time.Duration
	last   time.Time // when the last input passed; its monotonic reading is used
	passed bool      // whether any input passed yet
}

// admit reports whether an input at now is to be emitted.
func (c *inputCoalescer) admit(now time.Time) bool {
	if c.passed && now.Sub(c.last) < c.window {
		return false
	}
	c.last, c.passed = now, true
	return true
}
