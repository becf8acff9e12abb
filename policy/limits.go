package policy

// Abuse limits: a per-key rate limiter (credential creations per client
// address), an authentication back-off (per client address and per target)
// and a counter of concurrent sessions. Each is safe for concurrent use,
// keeps its state in memory under one mutex, never blocks the caller and
// starts no goroutine: idle state is swept on the calls themselves.
//
// Each reads the time through a now field that its constructor sets to
// time.Now, so tests can drive the clock.

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// defaultMaxKeys bounds how many keys a RateLimiter tracks at once.
const defaultMaxKeys = 100_000

// RateLimiter allows n events per key per window: a token bucket with a burst
// of n that refills one token every window/n, e.g. credential creations per
// client address per minute.
//
// It stores one time per key (the generic cell rate algorithm: the time at
// which the key's bucket is full again). Keys whose bucket is full carry no
// information and are swept at most once per window, so memory is bounded by
// the keys active in the last window or two, and never exceeds maxKeys: when
// the table is full, it is swept early (at most once per window/n) and, if
// no room is freed, a new key is refused until the next sweep; keys already
// present are unaffected. Callers choose the key; an IPv6 client is better
// keyed by its /64 than by its full address.
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
// window <= 0 disables it, and Allow always returns true.
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
// returns false and how long until a token is available.
func (l *RateLimiter) Allow(key string) (ok bool, retryAfter time.Duration) {
	if l.n <= 0 {
		return true, 0
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
			return false, l.swept.Add(l.interval).Sub(now)
		}
	}
	if full.Before(now) {
		full = now
	}
	next := full.Add(l.interval)
	if wait := next.Sub(now) - l.span; wait > 0 {
		return false, wait
	}
	l.full[key] = next
	return true, 0
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

// Errors returned by SessionCounter.Acquire.
var (
	ErrTooManySessions       = errors.New("too many sessions on the gateway")
	ErrTooManyClientSessions = errors.New("too many sessions from this address")
)

// SessionCounter bounds the number of concurrent sessions, in total and per
// key (the client address).
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
func (c *SessionCounter) Acquire(key string) (release func(), err error) {
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
