package redislimit

import (
	"errors"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/alfresco-ssh/alfresco-ssh/internal/servicetest"
	"github.com/alfresco-ssh/alfresco-ssh/policy"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func client(t *testing.T, addr string) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	t.Cleanup(func() { c.Close() })
	return c
}

// retry is Allow's refusal delay, or 0 when allowed.
func retry(t *testing.T, r *Rate, key string) time.Duration {
	t.Helper()
	err := r.Allow(t.Context(), key)
	var refused *policy.RateLimitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &refused):
		return refused.RetryAfter
	}
	t.Fatalf("Allow: got %v, want nil or a refusal", err)
	return 0
}

// TestRateAcrossNodes: two nodes' limiters on one Redis (miniredis, time
// standing still unless moved) share each key's budget of 3 a minute.
func TestRateAcrossNodes(t *testing.T) {
	m := miniredis.RunT(t)
	now := time.Now()
	m.SetTime(now)
	a := NewRate(client(t, m.Addr()), "create", 3, time.Minute)
	b := NewRate(client(t, m.Addr()), "create", 3, time.Minute)
	for i, r := range []*Rate{a, b, a} {
		if d := retry(t, r, "192.0.2.1"); d != 0 {
			t.Fatalf("event %d: got a refusal (retry %v), want allowed", i, d)
		}
	}
	if d := retry(t, b, "192.0.2.1"); d != 20*time.Second {
		t.Errorf("4th event: got retry %v, want 20s (one token back every 20 s)", d)
	}
	if d := retry(t, a, "192.0.2.2"); d != 0 {
		t.Errorf("another key: got retry %v, want allowed", d)
	}
	now = now.Add(20 * time.Second)
	m.SetTime(now)
	if d := retry(t, a, "192.0.2.1"); d != 0 {
		t.Errorf("20 s later: got retry %v, want one token back", d)
	}
	if d := retry(t, b, "192.0.2.1"); d != 20*time.Second {
		t.Errorf("and then: got retry %v, want 20s", d)
	}
}

// TestRateRealRedis races 20 events on a real redis-server from two nodes:
// exactly the budget is allowed; with Redis gone, Allow fails with an
// error that is not a refusal.
func TestRateRealRedis(t *testing.T) {
	srv := servicetest.StartRedis(t)
	nodes := []*Rate{NewRate(client(t, srv.Addr), "create", 5, time.Hour), NewRate(client(t, srv.Addr), "create", 5, time.Hour)}
	results := make(chan error, 20)
	for i := range 20 {
		go func() { results <- nodes[i%2].Allow(t.Context(), "k") }()
	}
	allowed := 0
	for range 20 {
		if err := <-results; err == nil {
			allowed++
		} else if !errors.As(err, new(*policy.RateLimitError)) {
			t.Errorf("got %v, want nil or a refusal", err)
		}
	}
	if allowed != 5 {
		t.Errorf("got %d allowed, want 5", allowed)
	}
	srv.Stop()
	err := nodes[0].Allow(t.Context(), "k")
	if err == nil || errors.As(err, new(*policy.RateLimitError)) {
		t.Errorf("Redis stopped: got %v, want an error that is not a refusal", err)
	}
}
