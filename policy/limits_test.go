package policy

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alfresco-ssh/alfresco-ssh/internal/fakeclock"
)

// rateStep advances the clock, then calls Allow(key) and expects ok and
// retryAfter.
type rateStep struct {
	advance time.Duration
	key     string
	ok      bool
	retry   time.Duration
}

// repeatN returns k copies of s.
func repeatN[S any](k int, s S) []S {
	out := make([]S, k)
	for i := range out {
		out[i] = s
	}
	return out
}

func concatN[S any](parts ...[]S) []S {
	var out []S
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// allow calls l.Allow and returns whether it allowed and, if not, the
// retry time of its refusal.
func allow(l *RateLimiter, key string) (ok bool, retryAfter time.Duration) {
	err := l.Allow(context.Background(), key)
	var refused *RateLimitError
	if errors.As(err, &refused) {
		return false, refused.RetryAfter
	}
	if err != nil {
		panic(err) // the in-memory limiter has no other error
	}
	return true, 0
}

func TestRateLimiter(t *testing.T) {
	allowA := rateStep{key: "a", ok: true}
	tests := []struct {
		name   string
		n      int
		window time.Duration
		steps  []rateStep
	}{
		{
			name: "trips at n+1", n: 3, window: 3 * time.Second,
			steps: concatN(repeatN(3, allowA), []rateStep{
				{key: "a", retry: time.Second},
				{key: "a", retry: time.Second},
			}),
		},
		{
			name: "one token back after window/n", n: 3, window: 3 * time.Second,
			steps: concatN(repeatN(3, allowA), []rateStep{
				{advance: 500 * time.Millisecond, key: "a", retry: 500 * time.Millisecond},
				{advance: 500*time.Millisecond - 1, key: "a", retry: 1},
				{advance: 1, key: "a", ok: true},
				{key: "a", retry: time.Second},
			}),
		},
		{
			name: "full again after window", n: 3, window: 3 * time.Second,
			steps: concatN(repeatN(3, allowA), []rateStep{{advance: 3 * time.Second, key: "a", ok: true}},
				repeatN(2, allowA), []rateStep{{key: "a", retry: time.Second}}),
		},
		{
			name: "no more than a burst of n after a long pause", n: 2, window: time.Minute,
			steps: concatN([]rateStep{{advance: time.Hour, key: "a", ok: true}},
				repeatN(1, allowA), []rateStep{{key: "a", retry: 30 * time.Second}}),
		},
		{
			name: "keys are independent", n: 2, window: time.Minute,
			steps: concatN(repeatN(2, allowA), []rateStep{
				{key: "a", retry: 30 * time.Second},
				{key: "b", ok: true},
				{key: "b", ok: true},
				{key: "b", retry: 30 * time.Second},
				{key: "a", retry: 30 * time.Second},
			}),
		},
		{
			name: "window not a multiple of n", n: 3, window: 10 * time.Second,
			steps: concatN(repeatN(3, allowA), []rateStep{
				{key: "a", retry: 10 * time.Second / 3},
				{advance: 10 * time.Second / 3, key: "a", ok: true},
				{key: "a", retry: 10 * time.Second / 3},
			}),
		},
		{name: "n zero disables", n: 0, window: time.Minute, steps: repeatN(1000, allowA)},
		{name: "n negative disables", n: -1, window: time.Minute, steps: repeatN(1000, allowA)},
		{name: "window zero disables", n: 1, window: 0, steps: repeatN(1000, allowA)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := fakeclock.New()
			l := NewRateLimiter(tt.n, tt.window)
			l.Now = clock.Now
			for i, s := range tt.steps {
				clock.Advance(s.advance)
				ok, retry := allow(l, s.key)
				if ok != s.ok || retry != s.retry {
					t.Fatalf("step %d: Allow(%q) = %v, %v; want %v, %v", i, s.key, ok, retry, s.ok, s.retry)
				}
			}
		})
	}
}

func TestRateLimiterSweepBoundsMemory(t *testing.T) {
	clock := fakeclock.New()
	l := NewRateLimiter(5, time.Minute)
	l.Now = clock.Now
	const keys = 10_000
	for i := range keys {
		if ok, _ := allow(l, fmt.Sprint("client-", i)); !ok {
			t.Fatalf("first Allow for key %d refused", i)
		}
	}
	if got := len(l.full); got != keys {
		t.Fatalf("tracked keys = %d, want %d", got, keys)
	}

	// Just before the sweep is due, exhaust one key: a sweep must not
	// forget a key that is still limited.
	clock.Advance(time.Minute - 1)
	for range 5 {
		allow(l, "busy")
	}
	if got := len(l.full); got != keys+1 {
		t.Fatalf("tracked keys before the sweep = %d, want %d", got, keys+1)
	}

	clock.Advance(1)
	if ok, _ := allow(l, "busy"); ok {
		t.Fatal("busy key allowed after the sweep, want still limited")
	}
	if got := len(l.full); got != 1 {
		t.Fatalf("tracked keys after the sweep = %d, want 1 (only the busy key)", got)
	}
}

func TestRateLimiterCap(t *testing.T) {
	clock := fakeclock.New()
	l := NewRateLimiter(2, 2*time.Second) // one token a second
	l.Now = clock.Now
	l.maxKeys = 3
	steps := []rateStep{
		{key: "a", ok: true},
		{key: "b", ok: true},
		{key: "c", ok: true},
		{key: "d", retry: time.Second}, // table full, nothing to sweep
		{key: "a", ok: true},           // known keys are unaffected
		{key: "a", retry: time.Second},
		// b and c are full again: the early sweep makes room.
		{advance: time.Second, key: "d", ok: true},
		{key: "e", ok: true},
		{key: "f", retry: time.Second}, // a, d, e: full again
	}
	for i, s := range steps {
		clock.Advance(s.advance)
		ok, retry := allow(l, s.key)
		if ok != s.ok || retry != s.retry {
			t.Fatalf("step %d: Allow(%q) = %v, %v; want %v, %v", i, s.key, ok, retry, s.ok, s.retry)
		}
		if len(l.full) > l.maxKeys {
			t.Fatalf("step %d: tracked keys = %d, want at most %d", i, len(l.full), l.maxKeys)
		}
	}
}

func TestRateLimiterConcurrent(t *testing.T) {
	clock := fakeclock.New()
	l := NewRateLimiter(10, time.Minute)
	l.Now = clock.Now
	var allowed atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range 100 {
		wg.Go(func() {
			<-start
			if ok, _ := allow(l, "shared"); ok {
				allowed.Add(1)
			}
			allow(l, fmt.Sprint("own-", i))
		})
	}
	close(start)
	wg.Wait()
	if got := allowed.Load(); got != 10 {
		t.Fatalf("allowed %d of 100 concurrent events, want 10", got)
	}
}

func TestSessionCounterLimits(t *testing.T) {
	tests := []struct {
		name              string
		maxTotal, maxPerK int
		keys              []string
		want              []error // one per key
	}{
		{
			name: "total", maxTotal: 2,
			keys: []string{"a", "b", "c", "a"},
			want: []error{nil, nil, ErrTooManySessions, ErrTooManySessions},
		},
		{
			name: "per key", maxPerK: 2,
			keys: []string{"a", "a", "a", "b", "b", "b"},
			want: []error{nil, nil, ErrTooManyClientSessions, nil, nil, ErrTooManyClientSessions},
		},
		{
			name: "both, per key reported first", maxTotal: 3, maxPerK: 2,
			keys: []string{"a", "a", "b", "a", "c"},
			want: []error{nil, nil, nil, ErrTooManyClientSessions, ErrTooManySessions},
		},
		{
			name: "unlimited",
			keys: repeatN(1000, "a"),
			want: repeatN[error](1000, nil),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewSessionCounter(tt.maxTotal, tt.maxPerK)
			for i, key := range tt.keys {
				release, err := c.Acquire(t.Context(), key)
				if !errors.Is(err, tt.want[i]) {
					t.Fatalf("Acquire %d (%q): got error %v, want %v", i, key, err, tt.want[i])
				}
				if (release == nil) != (err != nil) {
					t.Fatalf("Acquire %d (%q): release %v with error %v", i, key, release != nil, err)
				}
			}
		})
	}
}

func TestSessionCounterRelease(t *testing.T) {
	c := NewSessionCounter(2, 1)
	mustAcquire := func(key string) func() {
		t.Helper()
		release, err := c.Acquire(t.Context(), key)
		if err != nil {
			t.Fatalf("Acquire(%q): %v", key, err)
		}
		return release
	}
	wantErr := func(key string, want error) {
		t.Helper()
		if _, err := c.Acquire(t.Context(), key); !errors.Is(err, want) {
			t.Fatalf("Acquire(%q): got error %v, want %v", key, err, want)
		}
	}

	ra := mustAcquire("a")
	wantErr("a", ErrTooManyClientSessions)
	rb := mustAcquire("b")
	wantErr("c", ErrTooManySessions)

	ra()
	ra() // a second release must not free a second slot
	ra2 := mustAcquire("a")
	wantErr("c", ErrTooManySessions)
	wantErr("a", ErrTooManyClientSessions)

	rb()
	rc := mustAcquire("c")
	rb()
	wantErr("d", ErrTooManySessions)

	ra2()
	rc()
	if c.total != 0 || len(c.byKey) != 0 {
		t.Fatalf("after all releases: total %d, keys %v; want 0 and none", c.total, c.byKey)
	}
}

func TestSessionCounterConcurrent(t *testing.T) {
	t.Run("exact admission", func(t *testing.T) {
		c := NewSessionCounter(10, 0)
		var wg sync.WaitGroup
		var mu sync.Mutex
		var releases []func()
		refused := 0
		start := make(chan struct{})
		for i := range 100 {
			wg.Go(func() {
				<-start
				release, err := c.Acquire(t.Context(), fmt.Sprint("client-", i))
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					releases = append(releases, release)
				case errors.Is(err, ErrTooManySessions):
					refused++
				}
			})
		}
		close(start)
		wg.Wait()
		if len(releases) != 10 || refused != 90 {
			t.Fatalf("admitted %d and refused %d of 100, want 10 and 90", len(releases), refused)
		}
		for _, release := range releases {
			wg.Go(release)
			wg.Go(release)
		}
		wg.Wait()
		if c.total != 0 || len(c.byKey) != 0 {
			t.Fatalf("after all releases: total %d, keys %d; want 0 and 0", c.total, len(c.byKey))
		}
	})

	t.Run("churn", func(t *testing.T) {
		const limit, perKey = 10, 3
		c := NewSessionCounter(limit, perKey)
		var held, maxHeld, maxKeyHeld atomic.Int32
		keyHeld := make([]atomic.Int32, 7)
		var admitted atomic.Int32
		var wg sync.WaitGroup
		for i := range 100 {
			wg.Go(func() {
				k := i % len(keyHeld)
				for range 50 {
					release, err := c.Acquire(t.Context(), fmt.Sprint("client-", k))
					if err != nil {
						continue
					}
					admitted.Add(1)
					raiseTo(&maxHeld, held.Add(1))
					raiseTo(&maxKeyHeld, keyHeld[k].Add(1))
					keyHeld[k].Add(-1)
					held.Add(-1)
					release()
					release()
				}
			})
		}
		wg.Wait()
		if got := maxHeld.Load(); got > limit {
			t.Fatalf("sessions held at once: got %d, want at most %d", got, limit)
		}
		if got := maxKeyHeld.Load(); got > perKey {
			t.Fatalf("sessions held at once by one key: got %d, want at most %d", got, perKey)
		}
		if admitted.Load() == 0 {
			t.Fatal("no session admitted")
		}
		if c.total != 0 || len(c.byKey) != 0 {
			t.Fatalf("after all releases: total %d, keys %d; want 0 and 0", c.total, len(c.byKey))
		}
	})
}

// raiseTo sets m to v if v is larger.
func raiseTo(m *atomic.Int32, v int32) {
	for old := m.Load(); v > old && !m.CompareAndSwap(old, v); old = m.Load() {
	}
}

func TestClientPrefixKey(t *testing.T) {
	tests := []struct {
		prefix ClientPrefix
		addr   string
		want   string
	}{
		{ClientPrefix{}, "192.0.2.7", "192.0.2.7"},
		{ClientPrefix{}, "2001:db8:1:2:a:b:c:d", "2001:db8:1:2::/64"},
		{ClientPrefix{}, "2001:db8:1:2::1", "2001:db8:1:2::/64"},
		{ClientPrefix{}, "2001:db8:1:3::1", "2001:db8:1:3::/64"},
		{ClientPrefix{}, "::ffff:192.0.2.7", "192.0.2.7"},
		{ClientPrefix{}, "fe80::1%eth0", "fe80::/64"},
		{ClientPrefix{}, "::1", "::/64"},
		{ClientPrefix{V4: 24}, "192.0.2.7", "192.0.2.0/24"},
		{ClientPrefix{V4: 24}, "2001:db8::1", "2001:db8::/64"},
		{ClientPrefix{V6: 128}, "2001:db8::1", "2001:db8::1"},
		{ClientPrefix{V6: 48}, "2001:db8:1:2::1", "2001:db8:1::/48"},
		{ClientPrefix{V4: 33, V6: 129}, "2001:db8::1", "2001:db8::1"},
		{ClientPrefix{V4: -1}, "192.0.2.7", "192.0.2.7"},
		{ClientPrefix{}, "not an address", "not an address"},
		{ClientPrefix{}, "", ""},
	}
	for _, tt := range tests {
		if got := tt.prefix.Key(tt.addr); got != tt.want {
			t.Errorf("%+v.Key(%q) = %q, want %q", tt.prefix, tt.addr, got, tt.want)
		}
	}
}
