// Package redislimit keeps abuse limits in Redis, so that every gateway
// node sharing the Redis server counts against the same limit: Rate, the
// policy.RateLimit of credential creations per client, and Login, the
// policy.LoginLimit of failed SSH logins per client and per account.
//
// Concurrency: Rate and Login are safe for concurrent use; each call is
// one Redis round trip, atomic on the server (a Lua script), but for a
// Login reservation that waits, which polls.
package redislimit

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/alfresco-ssh/alfresco-ssh/policy"
)

const ratePrefix = "alfresco-ssh:rate:"

// rateScript is the generic cell rate algorithm, as policy.RateLimiter
// runs it in memory: the key holds the time (Unix ms) at which its bucket
// is full again. An event is allowed when, one interval later, the bucket
// would not hold more than span; the key then expires when the bucket is
// full. It returns 0 when allowed, otherwise how many ms until it would be.
//
// KEYS: the bucket. ARGV: interval ms, span ms.
var rateScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local full = tonumber(redis.call('GET', KEYS[1]) or now)
if full < now then full = now end
local next = full + tonumber(ARGV[1])
local over = next - now - tonumber(ARGV[2])
if over > 0 then
	return over
end
redis.call('SET', KEYS[1], next, 'PX', next - now)
return 0
`)

// Rate allows n events per key per window across every node: a token
// bucket with a burst of n that refills one token every window/n.
type Rate struct {
	client         redis.Scripter
	name           string
	interval, span time.Duration
}

// NewRate returns the limit name (a word: "create") of n events per key
// per window on client; n must be positive.
func NewRate(client redis.Scripter, name string, n int, window time.Duration) *Rate {
	interval := max(window/time.Duration(n), time.Millisecond)
	return &Rate{client: client, name: name, interval: interval, span: interval * time.Duration(n)}
}

// Allow takes one token from key's bucket. It refuses with a
// *policy.RateLimitError; any other error means Redis could not be
// reached.
func (r *Rate) Allow(ctx context.Context, key string) error {
	over, err := rateScript.Run(ctx, r.client, []string{ratePrefix + r.name + ":" + key},
		r.interval.Milliseconds(), r.span.Milliseconds()).Int64()
	if err != nil {
		return fmt.Errorf("redislimit: %s rate: %w", r.name, err)
	}
	if over > 0 {
		return &policy.RateLimitError{RetryAfter: time.Duration(over) * time.Millisecond}
	}
	return nil
}

var _ policy.RateLimit = (*Rate)(nil)
