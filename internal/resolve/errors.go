package resolve

import (
	"errors"
	"time"

	"amos.example/amosd/internal/errclass"
)

// Sentinel errors; transport's ErrNameNotFound, ErrResolverUnreachable and
// ErrResolverFailed are these.
var (
	// ErrConfig means dns_servers is unusable: the message names the entry.
	ErrConfig = errors.New("resolve: bad dns_servers")

	// ErrNameNotFound means the resolver answered that the host name has no address
	// (netd's EAI_NODATA or EAI_NONAME, or NXDOMAIN): check server_url and the
	// network's DNS.
	ErrNameNotFound = errors.New("transport: host name not found")

	// ErrUnreachable means Android's /dev/socket/dnsproxyd exists but cannot be
	// connected to: netd is down, or amosd lacks group inet or the SELinux permission.
	// The message names the socket and the system's reason.
	ErrUnreachable = errors.New("transport: DNS proxy unreachable")

	// ErrFailed means a lookup got no usable answer: a temporary failure or timeout
	// of the resolver, a proxy that closed the connection mid-answer or answered
	// something that breaks its protocol, or a lookup cut short by the context (then
	// the context's error matches too).
	ErrFailed = errors.New("transport: DNS lookup failed")
)

// DefaultTimeout bounds a lookup and a dial when New is given no timeout.
const DefaultTimeout = 30 * time.Second

func classify(cause error, sentinels []error, format string, args ...any) error {
	return errclass.New(cause, sentinels, format, args...)
}

func configErr(format string, args ...any) error {
	return classify(nil, []error{ErrConfig}, "transport: "+format, args...)
}
