package policy

import (
	"sync"
	"time"
)

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
