package transport

import (
	"errors"
	"fmt"
	"time"

	"amos.example/amosd/internal/errclass"
	"amos.example/amosd/internal/resolve"
)

// Sentinel errors. Every error of this package wraps at least one of them; Upload errors
// always wrap ErrTransient, ErrTLS or ErrInvalidRecord, and in every case the records
// that the returned Result does not settle stay queued.
var (
	// ErrConfig means New was given an unusable configuration: the message names the
	// setting (and the file, for ca_file) and what is wrong.
	ErrConfig = errors.New("transport: bad configuration")

	// ErrTLS means the server could not be authenticated or would not speak TLS with
	// us: a certificate from another CA than the pinned one, a wrong name, an expired
	// certificate, no common TLS version, or plain HTTP on an https URL. Retrying helps
	// only if the network changes (a captive portal) or ca_file is replaced, so the loop
	// backs off as for a transient failure and shows it in status. There is no fallback
	// to other roots or to plain HTTP.
	ErrTLS = errors.New("transport: TLS failure")

	// ErrTransient means the upload failed for a reason that may go away: timeouts,
	// connection resets, 5xx answers, truncated or garbage responses. The loop keeps
	// the records and backs off. *RetryAfterError matches it too.
	ErrTransient = errors.New("transport: transient failure")

	// ErrProtocol means the server answered 200 with a body that breaks docs/protocol.md: not
	// JSON, too large, missing fields, an unknown status, or a result list that does
	// not match the request. It always comes together with ErrTransient: nothing of
	// that answer is applied.
	ErrProtocol = errors.New("transport: response breaks the sync protocol")

	// ErrInvalidRecord means Upload was handed a record that does not decode (proof.Decode),
	// or a batch that proof.EncodeBatch refuses. Nothing was sent. Records come from the
	// store, which validates them when minted, so this is a bug in the caller.
	ErrInvalidRecord = errors.New("transport: invalid record")

	// ErrRetryAfter means a Retry-After value is neither delay-seconds nor an HTTP date.
	ErrRetryAfter = errors.New("transport: malformed Retry-After")

	// ErrNameNotFound means the resolver answered that the server's host name has no
	// address (netd's EAI_NODATA or EAI_NONAME, or NXDOMAIN): check server_url and the
	// network's DNS. On the upload path it comes together with ErrTransient.
	ErrNameNotFound = resolve.ErrNameNotFound

	// ErrResolverUnreachable means Android's /dev/socket/dnsproxyd exists but cannot be
	// connected to: netd is down, or amosd lacks group inet or the SELinux permission.
	// It comes together with ErrTransient on the upload path.
	ErrResolverUnreachable = resolve.ErrUnreachable

	// ErrResolverFailed means a lookup got no usable answer (internal/resolve). It comes
	// together with ErrTransient on the upload path.
	ErrResolverFailed = resolve.ErrFailed
)

// MaxRetryAfter is the longest wait a server can impose with Retry-After (docs/protocol.md).
const MaxRetryAfter = 24 * time.Hour

// RetryAfterError is the error for a 429 or 503 answer with a valid Retry-After header:
// no record of the request was settled, and the server asks not to try again before
// After (already clamped to [0, MaxRetryAfter]). It matches ErrTransient; use errors.As
// to get the wait and pass it to Backoff.RetryAfter.
type RetryAfterError struct {
	StatusCode int           // 429 or 503
	After      time.Duration // the wait the server asked for, clamped
}

func (e *RetryAfterError) Error() string {
	return fmt.Sprintf("transport: server answered %d, retry after %s", e.StatusCode, e.After)
}

// Unwrap returns ErrTransient.
func (e *RetryAfterError) Unwrap() error { return ErrTransient }

// StatusError is the error for an HTTP status that settles nothing and carries no usable
// Retry-After: any 5xx, 3xx (redirects are not followed), 4xx other than 400 and 413, and
// 429 or 503 without a valid Retry-After. It matches ErrTransient.
type StatusError struct {
	StatusCode int
	Detail     string // why, when the status alone does not say it
}

func (e *StatusError) Error() string {
	s := fmt.Sprintf("transport: server answered %d", e.StatusCode)
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// Unwrap returns ErrTransient.
func (e *StatusError) Unwrap() error { return ErrTransient }

// classify makes an error that matches the sentinels and keeps its cause.
func classify(cause error, sentinels []error, format string, args ...any) error {
	return errclass.New(cause, sentinels, format, args...)
}

var (
	transientOnly = []error{ErrTransient}
	protocolOnly  = []error{ErrTransient, ErrProtocol}
	tlsOnly       = []error{ErrTLS}
)

// protocolErr returns an error matching ErrTransient and ErrProtocol.
func protocolErr(format string, args ...any) error {
	return classify(nil, protocolOnly, "transport: response breaks the sync protocol: "+format, args...)
}
