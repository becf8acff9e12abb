package redislimit

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/alfresco-ssh/alfresco-ssh/policy"
)

// Login is the back-off on failed SSH logins kept in Redis, so that a
// client or an account that fails on one node is blocked on every node:
// the rules of policy.AuthBackoff, with each record (a client, an account)
// in three keys: its recent failures (a sorted set by time, each member
// the attempt's id followed by the other side's name, so that a success
// forgets exactly its own pair's failures), the end of its block, and its
// attempts in flight (a sorted set by expiry, so that the reservations of
// a node that died end by themselves after the longest login). Reserve
// and Done are one round trip each, atomic on the server (Lua); a
// reservation that must wait polls.
type Login struct {
	client                   redis.Scripter
	limit, keep              int
	window, base, maxBackoff time.Duration
	hold                     time.Duration // how long a reservation lasts at most
	poll                     time.Duration // how often a waiting Reserve looks again
}

// NewLogin returns the back-off of policy.NewAuthBackoff(limit, window,
// base, maxBackoff) on client; hold bounds a login (the SSH timeout and a
// margin). limit and base must be positive.
func NewLogin(client redis.Scripter, limit int, window, base, maxBackoff, hold time.Duration) *Login {
	maxBackoff = max(maxBackoff, base)
	return &Login{client: client, limit: limit, window: window, base: base, maxBackoff: maxBackoff,
		hold: hold, poll: 100 * time.Millisecond, keep: policy.FailuresKept(limit, base, maxBackoff)}
}

var _ policy.LoginLimit = (*Login)(nil)

const loginPrefix = "alfresco-ssh:login:"

// idLen is the length of an attempt id: 16 random bytes, base64url.
const idLen = 22

// keys are the six keys of a login: the client's failures, block end and
// attempts, then the account's.
func loginKeys(l policy.Login) []string {
	return []string{
		loginPrefix + "cf:" + l.Client, loginPrefix + "cu:" + l.Client, loginPrefix + "ci:" + l.Client,
		loginPrefix + "af:" + l.Account, loginPrefix + "au:" + l.Account, loginPrefix + "ai:" + l.Account,
	}
}

// reserveScript refuses a blocked client or account ({1, 0 for the client
// or 1 for the account, ms left}), asks to wait while either has as many
// attempts in flight as failures could still happen before a block ({2}),
// or reserves ({0}). Failures older than the window are forgotten unless a
// block ended less than a window ago.
//
// KEYS: loginKeys. ARGV: limit, window ms, attempt id, hold ms.
var reserveScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit, window, hold = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[4])
for r = 0, 1 do
	local blocked = tonumber(redis.call('GET', KEYS[r*3+2]) or 0)
	if now < blocked then
		return {1, r, blocked - now}
	end
	if now - blocked >= window then
		redis.call('ZREMRANGEBYSCORE', KEYS[r*3+1], '-inf', now - window)
	end
end
for r = 0, 1 do
	redis.call('ZREMRANGEBYSCORE', KEYS[r*3+3], '-inf', now)
	local room = math.max(limit - redis.call('ZCARD', KEYS[r*3+1]), 1)
	if redis.call('ZCARD', KEYS[r*3+3]) >= room then
		return {2, r, 0}
	end
end
for r = 0, 1 do
	redis.call('ZADD', KEYS[r*3+3], now + hold, ARGV[3])
	redis.call('PEXPIRE', KEYS[r*3+3], hold)
end
return {0, 0, 0}
`)

// doneScript ends an attempt (nothing if it had ended or expired): a
// failure is recorded on both records, blocking one that reaches the
// limit for base, doubled for each failure past it, up to maxBackoff; a
// success forgets the failures of the same pair.
//
// KEYS: loginKeys. ARGV: attempt id, outcome (0 abandoned, 1 failed, 2
// succeeded), the client's tag (the account), the account's tag (the
// client), limit, window ms, base ms, max back-off ms, failures kept.
var doneScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local id, outcome = ARGV[1], tonumber(ARGV[2])
if redis.call('ZREM', KEYS[3], id) + redis.call('ZREM', KEYS[6], id) == 0 then
	return 0
end
local limit, window, base, maxb, keep = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
for r = 0, 1 do
	local f, u, tag = KEYS[r*3+1], KEYS[r*3+2], ARGV[3+r]
	if outcome == 1 then
		if now - tonumber(redis.call('GET', u) or 0) >= window then
			redis.call('ZREMRANGEBYSCORE', f, '-inf', now - window)
		end
		redis.call('ZADD', f, now, id .. tag)
		local n = redis.call('ZCARD', f)
		if n > keep then
			redis.call('ZREMRANGEBYRANK', f, 0, n - keep - 1)
			n = keep
		end
		redis.call('PEXPIRE', f, maxb + window)
		if n >= limit then
			local d = math.floor(math.min(base * 2 ^ (n - limit), maxb))
			redis.call('SET', u, now + d, 'PX', d + window)
		end
	elseif outcome == 2 then
		for _, m in ipairs(redis.call('ZRANGE', f, 0, -1)) do
			if string.sub(m, ` + fmt.Sprint(idLen+1) + `) == tag then
				redis.call('ZREM', f, m)
			end
		end
	end
end
return 1
`)

// Reserve implements policy.LoginLimit: a *policy.LoginRefusedError while
// the client (checked first) or the account is blocked; while either has
// no room for another attempt in flight it polls until there is, or until
// ctx ends (then context.Cause(ctx)); any other error means Redis could
// not be reached.
func (b *Login) Reserve(ctx context.Context, l policy.Login) (policy.Attempt, error) {
	id := make([]byte, 16)
	rand.Read(id)
	a := &loginAttempt{b: b, login: l, id: base64.RawURLEncoding.EncodeToString(id)}
	for {
		res, err := reserveScript.Run(ctx, b.client, loginKeys(l), b.limit, b.window.Milliseconds(), a.id, b.hold.Milliseconds()).Int64Slice()
		if err != nil {
			if cause := context.Cause(ctx); cause != nil {
				return nil, cause
			}
			return nil, fmt.Errorf("redislimit: login back-off: %w", err)
		}
		switch res[0] {
		case 0:
			return a, nil
		case 1:
			return nil, &policy.LoginRefusedError{Account: res[1] == 1, RetryAfter: time.Duration(res[2]) * time.Millisecond}
		}
		select {
		case <-time.After(b.poll):
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	}
}

// loginAttempt is a reservation of Login.
type loginAttempt struct {
	b     *Login
	login policy.Login
	id    string
}

// Done implements policy.Attempt; later calls find nothing to end.
func (a *loginAttempt) Done(ctx context.Context, o policy.Outcome) error {
	b := a.b
	outcome := map[policy.Outcome]int{policy.Abandoned: 0, policy.Failed: 1, policy.Succeeded: 2}[o]
	err := doneScript.Run(ctx, b.client, loginKeys(a.login), a.id, outcome, a.login.Account, a.login.Client,
		b.limit, b.window.Milliseconds(), b.base.Milliseconds(), b.maxBackoff.Milliseconds(), b.keep).Err()
	if err != nil {
		return fmt.Errorf("redislimit: login outcome: %w", err)
	}
	return nil
}
