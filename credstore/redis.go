package credstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/alfresco-ssh/alfresco-ssh/sshbridge"
)

// Redis keys: one string per pending entry, holding its ciphertext, and
// one sorted set of the pending ids scored by their expiry (Unix ms), which
// bounds the number of entries across every node.
const (
	entryPrefix = "alfresco-ssh:cred:"
	pendingKey  = "alfresco-ssh:pending"
)

// putScript stores one entry unless the store is full: it drops the
// expired ids from the pending set, counts the rest, and then stores the
// entry with SET ... PX ttl NX, all atomically. It returns 1 when stored,
// 0 when full, -1 when the id is taken.
//
// KEYS: entry, pending set. ARGV: ciphertext, ttl ms, max, id.
var putScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[3]) then
	return 0
end
if not redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX') then
	return -1
end
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), ARGV[4])
return 1
`)

// Redis keeps credentials in a Redis server (6.2 or later) shared by
// several gateway nodes, so that a node can start a session created on
// another. Redis holds only the AES-GCM ciphertext, sealed under the key
// every node shares; each entry is taken at most once (GETDEL) and expires
// after its time to live (PX). Safe for concurrent use.
type Redis struct {
	sealer *sealer
	client *redis.Client
	ttl    time.Duration
	max    int
}

// NewRedis returns a store on the Redis server at url
// (redis://[user:pass@]host:port/db or rediss://... for TLS) whose entries
// expire after ttl, holding at most max entries across every node. key is
// the secret every node shares; it must be set. NewRedis does not connect:
// a Redis that is down at first is reported by Ping and by every call
// until it is back.
func NewRedis(url string, key []byte, ttl time.Duration, max int) (*Redis, error) {
	if len(key) == 0 {
		return nil, errors.New("credstore: a Redis store needs a key shared by every node")
	}
	opts, err := redisOptions(url)
	if err != nil {
		return nil, err
	}
	sl, err := newSealer(key)
	if err != nil {
		return nil, err
	}
	quietOnce.Do(func() { redis.SetLogger(quiet{}) })
	return &Redis{sealer: sl, client: redis.NewClient(opts), ttl: ttl, max: max}, nil
}

// redisOptions are the client options of NewRedis.
func redisOptions(url string) (*redis.Options, error) {
	opts, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("credstore: redis url: %w", err)
	}
	// A caller's context bounds its call (readiness probes, limits and
	// the registry give theirs a deadline shorter than the timeouts).
	opts.ContextTimeoutEnabled = true
	opts.DialTimeout = 2 * time.Second
	opts.ReadTimeout = 2 * time.Second
	opts.WriteTimeout = 2 * time.Second
	// A command or a dial that fails is retried once: a down Redis then
	// answers a creation within a tenth of a second, not after a series of
	// back-offs.
	opts.MaxRetries = 1
	opts.DialerRetries = 1
	opts.DialerRetryTimeout = 20 * time.Millisecond
	opts.DisableIdentity = true
	opts.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	return opts, nil
}

// Put seals t and returns its new id, a random UUID: one round trip.
func (s *Redis) Put(ctx context.Context, t sshbridge.Target) (string, error) {
	for range 3 { // a taken id means a UUID collision: try another
		id := uuid.NewString()
		blob, err := s.sealer.seal(id, t)
		if err != nil {
			return "", err
		}
		ttl := strconv.FormatInt(s.ttl.Milliseconds(), 10)
		n, err := putScript.Run(ctx, s.client, []string{entryPrefix + id, pendingKey}, blob, ttl, s.max, id).Int()
		clear(blob)
		switch {
		case err != nil:
			return "", unavailable("store credentials", err)
		case n == 0:
			return "", ErrStoreFull
		case n == 1:
			return id, nil
		}
	}
	return "", errors.New("credstore: no free id")
}

// Take removes the entry id and returns its credentials: one round trip.
// Of several callers racing for one id, on any nodes, exactly one
// succeeds.
func (s *Redis) Take(ctx context.Context, id string) (sshbridge.Target, error) {
	if !validID(id) {
		return sshbridge.Target{}, ErrCredentialsNotFound
	}
	var get *redis.StringCmd
	_, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		get = p.GetDel(ctx, entryPrefix+id)
		p.ZRem(ctx, pendingKey, id)
		return nil
	})
	if errors.Is(err, redis.Nil) {
		return sshbridge.Target{}, ErrCredentialsNotFound
	}
	if err != nil {
		return sshbridge.Target{}, unavailable("take credentials", err)
	}
	blob, _ := get.Bytes()
	t, err := s.sealer.open(id, blob)
	clear(blob)
	return t, err
}

// Has reports whether id is waiting to be used: one round trip.
func (s *Redis) Has(ctx context.Context, id string) (bool, error) {
	if !validID(id) {
		return false, nil
	}
	n, err := s.client.Exists(ctx, entryPrefix+id).Result()
	if err != nil {
		return false, unavailable("look up credentials", err)
	}
	return n == 1, nil
}

// Ping reports whether Redis answers.
func (s *Redis) Ping(ctx context.Context) error {
	if err := s.client.Ping(ctx).Err(); err != nil {
		return unavailable("ping", err)
	}
	return nil
}

// Client is the store's Redis client, for other state the nodes share
// (package redislimit).
func (s *Redis) Client() *redis.Client { return s.client }

// Close closes the connections to Redis; the entries stay there for the
// other nodes.
func (s *Redis) Close() error { return s.client.Close() }

// quiet drops go-redis's own log lines (a dial failure, for each attempt,
// on stderr): the callers' errors say what failed, and the server logs
// them.
type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

var quietOnce sync.Once

func unavailable(op string, err error) error {
	return fmt.Errorf("credstore: redis %s: %w: %w", op, ErrUnavailable, err)
}

// validID reports whether id has the form of the ids Put hands out, so
// that nothing else reaches Redis as a key.
func validID(id string) bool {
	u, err := uuid.Parse(id)
	return err == nil && len(id) == 36 && u.String() == id
}
