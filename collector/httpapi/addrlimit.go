package httpapi

import (
	"container/list"
	"net/netip"
	"sync"
	"time"
)

// addrLimiter is a token bucket per remote address for POST /v1/records, which has no
// authentication (limits.address_requests_per_second, address_burst, max_addresses):
// burst tokens, refilled at rate a second. An IPv4 address is one address; an IPv6
// address counts as its /64, the block one subscriber usually gets.
//
// The table holds at most max addresses. A bucket that has refilled is worth nothing
// (a new one would be the same), so the least recently used buckets that are full again
// are forgotten as the table is used; when it is full all the same, the least recently
// used address is forgotten (evicted: it starts over with a full bucket), so that no
// number of addresses can grow the limiter's memory.
type addrLimiter struct {
	mu      sync.Mutex
	rate    float64 // tokens a second
	burst   float64
	max     int
	now     func() time.Time
	table   map[netip.Prefix]*list.Element // of *addrBucket
	lru     *list.List                     // most recently used first
	evicted func()                         // called once per eviction; set before use
}

type addrBucket struct {
	key    netip.Prefix
	tokens float64
	at     time.Time
}

func newAddrLimiter(perSecond, burst, max int, now func() time.Time) *addrLimiter {
	return &addrLimiter{rate: float64(perSecond), burst: float64(burst), max: max, now: now,
		table: map[netip.Prefix]*list.Element{}, lru: list.New(), evicted: func() {}}
}

// addrKey returns the bucket of a request's RemoteAddr ("IP:port"): the IPv4 address
// (an IPv4-mapped IPv6 address is the IPv4 one), or the /64 of an IPv6 address, its
// zone dropped. Anything else (a Unix socket) is the zero Prefix: all such requests
// share one bucket.
func addrKey(remote string) netip.Prefix {
	var a netip.Addr
	if ap, err := netip.ParseAddrPort(remote); err == nil {
		a = ap.Addr()
	} else if a, err = netip.ParseAddr(remote); err != nil {
		return netip.Prefix{}
	}
	a = a.Unmap().WithZone("")
	bits := 32
	if a.Is6() {
		bits = 64
	}
	p, err := a.Prefix(bits)
	if err != nil {
		return netip.Prefix{}
	}
	return p
}

// addrString renders a key for an error message: the IPv4 address, the IPv6 /64, or
// "unknown".
func addrString(p netip.Prefix) string {
	switch {
	case !p.IsValid():
		return "unknown"
	case p.Addr().Is4():
		return p.Addr().String()
	}
	return p.String()
}

// level returns the bucket's tokens at now, without changing it.
func (l *addrLimiter) level(b *addrBucket, now time.Time) float64 {
	if d := now.Sub(b.at); d > 0 {
		return min(l.burst, b.tokens+d.Seconds()*l.rate)
	}
	return b.tokens
}

func (l *addrLimiter) remove(e *list.Element) {
	delete(l.table, e.Value.(*addrBucket).key)
	l.lru.Remove(e)
}

// take spends one of the address's tokens, or says how long until one is back.
func (l *addrLimiter) take(key netip.Prefix) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	// Forget up to two buckets that are full again, least recently used first: with
	// one new address per request at most, this keeps the table to the addresses that
	// are still limited.
	for range 2 {
		e := l.lru.Back()
		if e == nil || l.level(e.Value.(*addrBucket), now) < l.burst {
			break
		}
		l.remove(e)
	}
	e := l.table[key]
	if e == nil {
		if len(l.table) >= l.max {
			l.remove(l.lru.Back())
			l.evicted()
		}
		e = l.lru.PushFront(&addrBucket{key: key, tokens: l.burst, at: now})
		l.table[key] = e
	} else {
		l.lru.MoveToFront(e)
	}
	b := e.Value.(*addrBucket)
	b.tokens, b.at = l.level(b, now), now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
}

// len returns the number of addresses tracked.
func (l *addrLimiter) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.table)
}
