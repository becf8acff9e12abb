package policy

// Abuse limits behind small interfaces (RateLimit, LoginLimit,
// SessionLimit), so that an implementation shared by several gateway nodes
// (Redis, say) can replace the in-memory ones here: RateLimiter (credential
// creations per client), AuthBackoff (failed SSH logins per client and per
// account, in backoff.go) and SessionCounter (concurrent sessions). The
// in-memory ones are safe for concurrent use, keep their state under one
// mutex, never block the caller, start no goroutine (idle state is swept on
// the calls themselves) and never return an error other than a refusal.
//
// Each reads the time through a Now field that its constructor sets to
// time.Now, so tests can drive the clock.

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// RateLimit allows a number of events per key per window.
type RateLimit interface {
	// Allow counts one event for key. It refuses with a *RateLimitError
	// when key has used up its events; any other error means the limit
	// could not be checked (its store is unreachable) and the caller
	// refuses the event.
	Allow(ctx context.Context, key string) error
}

// SessionLimit bounds concurrent sessions, in total and per client key.
type SessionLimit interface {
	// Acquire counts a new session for key. It refuses with
	// ErrTooManyClientSessions or ErrTooManySessions; any other error
	// means the limit could not be checked. On success the caller calls
	// release when the session ends; later calls of release do nothing.
	Acquire(ctx context.Context, key string) (release func(), err error)
}

// Limits are the limits a gateway applies.
type Limits struct {
	Creates  RateLimit    // credential creations per client key
	Logins   LoginLimit   // the back-off on failed SSH logins
	Sessions SessionLimit // concurrent terminals, in total and per client key
}

// ClientPrefix says how much of a client's address keys the per-client
// limits: an IPv4 address is cut to its first V4 bits, an IPv6 address to
// its first V6 bits. A zero field means the default, /32 for IPv4 (the
// address) and /64 for IPv6 (what one subscriber or host usually holds,
// so that a client cannot step around its limits by changing addresses
// inside its /64).
type ClientPrefix struct{ V4, V6 int }

// Key returns the key of the client at addr (an IP address) in the
// per-client limits: the address when the prefix is the whole address,
// else the prefix ("2001:db8:1:2::/64"). An IPv4-mapped IPv6 address counts
// as IPv4; a zone is dropped. Anything that is not an IP address is its own
// key.
func (p ClientPrefix) Key(addr string) string {
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return addr
	}
	ip = ip.Unmap().WithZone("")
	bits := cmp.Or(p.V6, 64)
	if ip.Is4() {
		bits = cmp.Or(p.V4, 32)
	}
	if bits >= ip.BitLen() {
		return ip.String()
	}
	prefix, err := ip.Prefix(bits)
	if err != nil {
		return ip.String() // bits out of range: the whole address
	}
	return prefix.String()
}

// RateLimitError is a refusal by a RateLimit.
type RateLimitError struct {
	RetryAfter time.Duration // until the key may have another event
}

func (e *RateLimitError) Error() string {
	return fmt.Sprintf("too many requests; try again in %d s", seconds(e.RetryAfter))
}

// seconds rounds d up to whole seconds, at least one.
func seconds(d time.Duration) int {
	return max(1, int((d+time.Second-1)/time.Second))
}

// defaultMaxKeys bounds how many keys a RateLimiter tracks at once.
const defaultMaxKeys = 100_000

// RateLimiter is the in-memory RateLimit. It allows n events per key per
// window: a token bucket with a burst of n that refills one token every
// window/n, e.g. credential creations per client per minute.
//
// It stores one time per key (the generic cell rate algorithm: the time at
// which the key's bucket is full again). Keys whose bucket is full carry no
// information and are swept at most once per window, so memory is bounded by
// the keys active in the last window or two, and never exceeds maxKeys: when
// the table is full, it is swept early (at most once per window/n) and, if
// no room is freed, a new key is refused until the next sweep; keys already
// present are unaffected. Callers choose the key (ClientPrefix.Key for a
// client).
type RateLimiter struct {
	n        int
	interval time.Duration // window/n: the time to earn back one token
	span     time.Duration // n*interval: the time to refill an empty bucket
	window   time.Duration
	maxKeys  int
	Now      func() time.Time

	mu    sync.Mutex
	full  map[string]time.Time // when each key's bucket is full again
	swept time.Time            // last sweep; zero before the first call
}

// NewRateLimiter returns a limiter of n events per key per window; n <= 0 or
// window <= 0 disables it, and Allow always allows.
func NewRateLimiter(n int, window time.Duration) *RateLimiter {
	l := &RateLimiter{n: n, window: window, maxKeys: defaultMaxKeys, Now: time.Now}
	if n <= 0 || window <= 0 {
		l.n = 0
		return l
	}
	l.interval = max(window/time.Duration(n), 1)
	l.span = l.interval * time.Duration(n)
	l.full = make(map[string]time.Time)
	return l
}

// Allow takes one token from key's bucket. When the bucket is empty it
// refuses with a *RateLimitError that says how long until a token is
// available.
func (l *RateLimiter) Allow(_ context.Context, key string) error {
	if l.n <= 0 {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.Now()
	if l.swept.IsZero() {
		l.swept = now // the first call starts the sweep schedule
	}
	if now.Sub(l.swept) >= l.window {
		l.sweep(now)
	}
	full, known := l.full[key]
	if !known {
		if len(l.full) >= l.maxKeys && now.Sub(l.swept) >= l.interval {
			l.sweep(now)
		}
		if len(l.full) >= l.maxKeys {
			return &RateLimitError{l.swept.Add(l.interval).Sub(now)}
		}
	}
	if full.Before(now) {
		full = now
	}
	next := full.Add(l.interval)
	if wait := next.Sub(now) - l.span; wait > 0 {
		return &RateLimitError{wait}
	}
	l.full[key] = next
	return nil
}

// sweep forgets keys whose bucket is full. l.mu must be held.
func (l *RateLimiter) sweep(now time.Time) {
	for key, full := range l.full {
		if !full.After(now) {
			delete(l.full, key)
		}
	}
	l.swept = now
}

// Refusals of a SessionLimit.
var (
	ErrTooManySessions       = errors.New("too many sessions on the gateway")
	ErrTooManyClientSessions = errors.New("too many sessions from this address")
)

// SessionCounter is the in-memory SessionLimit: it bounds the number of
// concurrent sessions, in total and per key (the client's key).
type SessionCounter struct {
	maxTotal  int
	maxPerKey int

	mu    sync.Mutex
	total int
	byKey map[string]int // only keys with live sessions
}

// NewSessionCounter returns a counter allowing maxTotal sessions in all and
// maxPerKey per key; a bound <= 0 is unlimited.
func NewSessionCounter(maxTotal, maxPerKey int) *SessionCounter {
	return &SessionCounter{maxTotal: maxTotal, maxPerKey: maxPerKey, byKey: make(map[string]int)}
}

// Acquire counts a new session for key. It fails with
// ErrTooManyClientSessions when key is at its bound (checked first, as the
// more specific answer), or ErrTooManySessions when the total is. On success
// the caller must call release when the session ends; calling it again has
// no effect.
func (c *SessionCounter) Acquire(_ context.Context, key string) (release func(), err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.maxPerKey > 0 && c.byKey[key] >= c.maxPerKey {
		return nil, ErrTooManyClientSessions
	}
	if c.maxTotal > 0 && c.total >= c.maxTotal {
		return nil, ErrTooManySessions
	}
	c.total++
	c.byKey[key]++
	var released atomic.Bool
	return func() {
		if released.Swap(true) {
			return
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		c.total--
		if c.byKey[key]--; c.byKey[key] == 0 {
			delete(c.byKey, key)
		}
	}, nil
}
