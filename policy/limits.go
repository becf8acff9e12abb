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

// AuthBackoff counts SSH authentication failures per key (the client address,
// and separately the target host:port). After limit failures within window the
// key is blocked for base; each further failure blocks it again for twice as
// long as the one before (base, 2*base, 4*base, ...) up to maxBackoff. A
// success forgets the key.
//
// A failure is forgotten once it is older than window, except that a key
// keeps all its failures until window has passed since its last block ended,
// so that back-offs longer than window still escalate. Callers check Blocked
// before attempting and report the outcome with Failure or Success.
//
// Forgotten keys are swept at most once per window; memory is bounded by the
// keys that failed recently, each holding at most limit plus a few times.
type AuthBackoff struct {
	limit      int // failures that trip a block; 0 when disabled
	window     time.Duration
	base       time.Duration
	maxBackoff time.Duration
	keep       int // failures kept per key: enough to reach maxBackoff
	Now        func() time.Time

	mu    sync.Mutex
	keys  map[string]*authFailures
	swept time.Time // last sweep; zero before the first failure
}

// authFailures is one key's state in an AuthBackoff.
type authFailures struct {
	times []time.Time // recent failures, oldest first, at most keep
	until time.Time   // when the current or last block ends
}

// NewAuthBackoff returns a back-off that blocks a key after limit failures
// within window. limit <= 0 or window <= 0 disables it: Blocked always
// returns false. A base <= 0 counts as one second and a maxBackoff below base
// as base.
func NewAuthBackoff(limit int, window, base, maxBackoff time.Duration) *AuthBackoff {
	b := &AuthBackoff{window: window, base: base, maxBackoff: maxBackoff, Now: time.Now}
	if limit <= 0 || window <= 0 {
		return b
	}
	b.limit = limit
	if b.base <= 0 {
		b.base = time.Second
	}
	b.maxBackoff = max(b.maxBackoff, b.base)
	b.keep = limit
	for d := b.base; d < b.maxBackoff; d = double(d) {
		b.keep++
	}
	b.keys = make(map[string]*authFailures)
	return b
}

// Blocked reports whether key is blocked and, if so, for how much longer.
func (b *AuthBackoff) Blocked(key string) (blocked bool, retryAfter time.Duration) {
	if b.limit == 0 {
		return false, 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.Now()
	if f := b.keys[key]; f != nil && now.Before(f.until) {
		return true, f.until.Sub(now)
	}
	return false, 0
}

// Failure records a failed authentication for key, blocking it once it has
// limit recent failures.
func (b *AuthBackoff) Failure(key string) {
	if b.limit == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.Now()
	if b.swept.IsZero() {
		b.swept = now // the first failure starts the sweep schedule
	}
	if now.Sub(b.swept) >= b.window {
		b.sweep(now)
	}
	f := b.keys[key]
	if f == nil {
		f = &authFailures{}
		b.keys[key] = f
	}
	f.forget(now, b.window)
	if len(f.times) == b.keep {
		f.times = append(f.times[:0], f.times[1:]...)
	}
	f.times = append(f.times, now)
	if extra := len(f.times) - b.limit; extra >= 0 {
		d := b.base
		for range extra {
			d = double(d)
		}
		f.until = now.Add(min(d, b.maxBackoff))
	}
}

// Success forgets key's failures and lifts any block.
func (b *AuthBackoff) Success(key string) {
	if b.limit == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.keys, key)
}

// sweep removes keys with nothing left to remember. b.mu must be held.
func (b *AuthBackoff) sweep(now time.Time) {
	for key, f := range b.keys {
		if f.forget(now, b.window) {
			delete(b.keys, key)
		}
	}
	b.swept = now
}

// forget drops failures older than window unless a block ended less than
// window ago, and reports whether nothing is left to remember.
func (f *authFailures) forget(now time.Time, window time.Duration) (empty bool) {
	if now.Sub(f.until) < window {
		return false
	}
	i := 0
	for i < len(f.times) && now.Sub(f.times[i]) >= window {
		i++
	}
	f.times = append(f.times[:0], f.times[i:]...)
	return len(f.times) == 0
}

// double returns 2*d, saturating instead of overflowing.
func double(d time.Duration) time.Duration {
	if d > (1<<63-1)/2 {
		return 1<<63 - 1
	}
	return 2 * d
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
