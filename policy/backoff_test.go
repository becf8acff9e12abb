package policy

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/alfresco-ssh/alfresco-ssh/internal/fakeclock"
)

// backoffStep advances the clock, then does op ("fail", "ok" or "check") on
// key; a check expects blocked and retry.
type backoffStep struct {
	advance time.Duration
	op      string
	key     string
	blocked bool
	retry   time.Duration
}

func TestAuthBackoff(t *testing.T) {
	fail := backoffStep{op: "fail", key: "a"}
	free := backoffStep{op: "check", key: "a"}
	blockedFor := func(d time.Duration) backoffStep {
		return backoffStep{op: "check", key: "a", blocked: true, retry: d}
	}
	after := func(d time.Duration, s backoffStep) backoffStep { s.advance = d; return s }

	type config struct {
		limit                    int
		window, base, maxBackoff time.Duration
	}
	std := config{limit: 3, window: time.Minute, base: time.Second, maxBackoff: 8 * time.Second}
	tests := []struct {
		name  string
		cfg   config
		steps []backoffStep
	}{
		{
			name: "blocks exactly at limit", cfg: std,
			steps: []backoffStep{
				free, fail, free, fail, free, fail,
				blockedFor(time.Second),
				after(time.Second-1, blockedFor(1)),
				after(1, free),
			},
		},
		{
			name: "back-off doubles and is capped", cfg: std,
			steps: []backoffStep{
				fail, fail, fail, blockedFor(time.Second),
				after(time.Second, fail), blockedFor(2 * time.Second),
				after(2*time.Second, fail), blockedFor(4 * time.Second),
				after(4*time.Second, fail), blockedFor(8 * time.Second),
				after(8*time.Second, fail), blockedFor(8 * time.Second),
				after(8*time.Second, fail), blockedFor(8 * time.Second),
			},
		},
		{
			name: "success resets", cfg: std,
			steps: []backoffStep{
				fail, fail, fail, fail, blockedFor(2 * time.Second),
				{op: "ok", key: "a"}, free,
				fail, fail, free, fail, blockedFor(time.Second),
			},
		},
		{
			name: "failures older than window are forgotten", cfg: std,
			steps: []backoffStep{
				fail, fail,
				after(time.Minute, fail), free, fail, free, fail, blockedFor(time.Second),
			},
		},
		{
			name: "failures within window count", cfg: std,
			steps: []backoffStep{
				fail, fail,
				after(time.Minute-1, fail), blockedFor(time.Second),
			},
		},
		{
			name: "keys are independent", cfg: std,
			steps: []backoffStep{
				fail, fail, fail, blockedFor(time.Second),
				{op: "check", key: "b"},
				{op: "fail", key: "b"},
				{op: "check", key: "b"},
				{op: "ok", key: "b"},
				blockedFor(time.Second),
			},
		},
		{
			// A back-off longer than window still escalates, and the key
			// is forgotten after a quiet window once the block ends.
			name: "back-off longer than window",
			cfg:  config{limit: 2, window: 10 * time.Second, base: 8 * time.Second, maxBackoff: time.Minute},
			steps: []backoffStep{
				fail, fail, blockedFor(8 * time.Second),
				after(8*time.Second, fail), blockedFor(16 * time.Second),
				after(16*time.Second, fail), blockedFor(32 * time.Second),
				after(32*time.Second, fail), blockedFor(time.Minute),
				after(time.Minute+10*time.Second-1, fail), blockedFor(time.Minute),
				after(time.Minute+10*time.Second, fail), free,
				fail, blockedFor(8 * time.Second),
			},
		},
		{
			name: "max backoff below base is base",
			cfg:  config{limit: 1, window: time.Minute, base: 5 * time.Second, maxBackoff: time.Second},
			steps: []backoffStep{
				fail, blockedFor(5 * time.Second),
				after(5*time.Second, fail), blockedFor(5 * time.Second),
			},
		},
		{
			name:  "limit zero disables",
			cfg:   config{limit: 0, window: time.Minute, base: time.Second, maxBackoff: time.Minute},
			steps: concatN(repeatN(100, fail), []backoffStep{free}),
		},
		{
			name:  "window zero disables",
			cfg:   config{limit: 1, window: 0, base: time.Second, maxBackoff: time.Minute},
			steps: concatN(repeatN(100, fail), []backoffStep{free}),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := fakeclock.New()
			b := NewAuthBackoff(tt.cfg.limit, tt.cfg.window, tt.cfg.base, tt.cfg.maxBackoff)
			b.Now = clock.Now
			for i, s := range tt.steps {
				clock.Advance(s.advance)
				switch s.op {
				case "fail":
					b.Failure(s.key)
				case "ok":
					b.Success(s.key)
				case "check":
					blocked, retry := b.Blocked(s.key)
					if blocked != s.blocked || retry != s.retry {
						t.Fatalf("step %d: Blocked(%q) = %v, %v; want %v, %v", i, s.key, blocked, retry, s.blocked, s.retry)
					}
				default:
					t.Fatalf("step %d: unknown op %q", i, s.op)
				}
			}
		})
	}
}

func TestAuthBackoffSweepBoundsMemory(t *testing.T) {
	clock := fakeclock.New()
	b := NewAuthBackoff(3, time.Minute, time.Second, time.Hour)
	b.Now = clock.Now
	const keys = 10_000
	for i := range keys {
		b.Failure(fmt.Sprint("client-", i))
	}
	for range 3 {
		b.Failure("blocked")
	}
	if got := len(b.keys); got != keys+1 {
		t.Fatalf("tracked keys = %d, want %d", got, keys+1)
	}
	clock.Advance(time.Minute)
	b.Failure("blocked") // sweeps; the blocked key is kept and escalates
	if got := len(b.keys); got != 1 {
		t.Fatalf("tracked keys after the sweep = %d, want 1", got)
	}
	if blocked, retry := b.Blocked("blocked"); !blocked || retry != 2*time.Second {
		t.Fatalf("Blocked(blocked) = %v, %v; want true, 2s", blocked, retry)
	}
}

func TestAuthBackoffConcurrent(t *testing.T) {
	clock := fakeclock.New()
	b := NewAuthBackoff(3, time.Minute, time.Second, 8*time.Second)
	b.Now = clock.Now
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range 100 {
		wg.Go(func() {
			<-start
			b.Failure("target:22")
			b.Blocked("target:22")
			key := fmt.Sprint("client-", i%10)
			b.Failure(key)
			b.Success(key)
		})
	}
	close(start)
	wg.Wait()
	if blocked, retry := b.Blocked("target:22"); !blocked || retry != 8*time.Second {
		t.Fatalf("Blocked after 100 failures = %v, %v; want true, 8s (the cap)", blocked, retry)
	}
	// Only as many failures as it takes to reach the cap are kept.
	if got, want := len(b.keys["target:22"].times), 3+3; got != want {
		t.Fatalf("failures kept = %d, want %d", got, want)
	}
}
