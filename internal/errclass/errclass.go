// Package errclass makes errors that match sentinels and keep their cause, so that
// errors.Is finds both while the message stays free of sentinel noise.
package errclass

import "fmt"

// Error matches its sentinels and its cause.
type Error struct {
	msg       string
	sentinels []error
	cause     error
}

// New returns an error with the message format (and ": " and the cause's message after
// it; the cause's message alone when format is empty) that matches every sentinel and
// the cause.
func New(cause error, sentinels []error, format string, args ...any) error {
	return &Error{msg: fmt.Sprintf(format, args...), sentinels: sentinels, cause: cause}
}

func (e *Error) Error() string {
	switch {
	case e.cause == nil:
		return e.msg
	case e.msg == "": // the cause says it all
		return e.cause.Error()
	}
	return e.msg + ": " + e.cause.Error()
}

// Unwrap gives errors.Is and errors.As the sentinels, then the cause.
func (e *Error) Unwrap() []error {
	if e.cause == nil {
		return e.sentinels
	}
	return append(e.sentinels[:len(e.sentinels):len(e.sentinels)], e.cause)
}
