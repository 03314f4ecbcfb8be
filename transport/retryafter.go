package transport

import (
	"fmt"
	"strings"
	"time"
)

// ParseRetryAfter returns the wait a Retry-After header value asks for (RFC 9110
// §10.2.3): delay-seconds, or an HTTP date taken relative to now. The wait is clamped to
// [0, MaxRetryAfter]: a date in the past means no wait, and a huge number of seconds
// means 24 h. Anything else, negative numbers included, is an error wrapping
// ErrRetryAfter.
func ParseRetryAfter(value string, now time.Time) (time.Duration, error) {
	v := strings.Trim(value, " \t")
	if v == "" {
		return 0, fmt.Errorf("%w: empty", ErrRetryAfter)
	}
	if isDigits(v) {
		// delay-seconds = 1*DIGIT; any value with more digits than 24 h has is clamped
		// without parsing, so that no number overflows.
		const maxSeconds = int64(MaxRetryAfter / time.Second)
		var n int64
		for i := 0; i < len(v); i++ {
			n = n*10 + int64(v[i]-'0')
			if n > maxSeconds {
				return MaxRetryAfter, nil
			}
		}
		return time.Duration(n) * time.Second, nil
	}
	t, err := parseHTTPDate(v)
	if err != nil {
		return 0, fmt.Errorf("%w: %q is neither seconds nor an HTTP date", ErrRetryAfter, truncate(v, 64))
	}
	return clampWait(t.Sub(now)), nil
}

// clampWait bounds a wait to [0, MaxRetryAfter].
func clampWait(d time.Duration) time.Duration {
	switch {
	case d < 0:
		return 0
	case d > MaxRetryAfter:
		return MaxRetryAfter
	}
	return d
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// retryAfter reads the Retry-After of a response from the values of its Date and
// Retry-After headers. An HTTP date is taken relative to the server's own Date header
// when it has a valid one, so that a phone whose clock is off still waits as long as the
// server meant; otherwise relative to local.
func retryAfter(date, value string, local time.Time) (time.Duration, error) {
	now := local
	if d, err := parseHTTPDate(date); err == nil {
		now = d
	}
	return ParseRetryAfter(value, now)
}

// httpDateLayouts are the HTTP-date formats of RFC 9110 §5.6.7, as net/http's ParseTime
// accepts them: IMF-fixdate, then the obsolete RFC 850 and asctime forms.
var httpDateLayouts = [...]string{"Mon, 02 Jan 2006 15:04:05 GMT", time.RFC850, time.ANSIC}

// parseHTTPDate parses an HTTP-date.
func parseHTTPDate(s string) (t time.Time, err error) {
	for _, layout := range httpDateLayouts {
		if t, err = time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return t, err
}

// truncate shortens s for an error message.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
