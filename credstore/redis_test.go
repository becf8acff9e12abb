package credstore

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/alfresco-ssh/alfresco-ssh/internal/servicetest"
	"github.com/alfresco-ssh/alfresco-ssh/sshbridge"
)

func TestNewRedisErrors(t *testing.T) {
	for _, tc := range []struct {
		name, url string
		key       []byte
		want      string
	}{
		{"no key", "redis://127.0.0.1:1/0", nil, "key shared by every node"},
		{"bad scheme", "http://127.0.0.1:1/0", testKey, "redis url"},
		{"bad db", "redis://127.0.0.1:1/x", testKey, "redis url"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := NewRedis(tc.url, tc.key, time.Minute, 10)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, %v; want an error with %q", s, err, tc.want)
			}
		})
	}
}

// TestRedisHoldsOnlyCiphertext reads everything Redis has, as redis-cli
// dumps it, and finds none of the credentials in it; a node with another
// key cannot open them either.
func TestRedisHoldsOnlyCiphertext(t *testing.T) {
	r := servicetest.StartRedis(t)
	s := newRedisStore(t, r.URL, testKey, time.Minute, 10)
	secret := sshbridge.Target{Host: "secret-host.example", Port: 2222, User: "secret-user",
		Password: "secret-password", PrivateKey: []byte("secret-private-key"), Passphrase: "secret-passphrase"}
	id, err := s.Put(t.Context(), secret)
	if err != nil {
		t.Fatal(err)
	}
	rdb := filepath.Join(t.TempDir(), "dump.rdb")
	if _, err := r.CLI("--rdb", rdb); err != nil {
		t.Fatal(err)
	}
	dump, err := os.ReadFile(rdb)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(dump, []byte(id)) {
		t.Fatalf("the dump does not hold the id %s; is it a dump of this Redis?", id)
	}
	for _, s := range []string{"secret", "2222"} {
		if bytes.Contains(dump, []byte(s)) {
			t.Errorf("the Redis dump holds %q, want only ciphertext", s)
		}
	}

	other := newRedisStore(t, r.URL, bytes.Repeat([]byte{8}, 32), time.Minute, 10)
	if got, err := other.Take(t.Context(), id); err == nil || errors.Is(err, ErrCredentialsNotFound) {
		t.Errorf("a node with another key: got %+v, %v; want an error opening the entry", got, err)
	}
}

// TestRedisUnavailable stops Redis under a store and starts it again: every
// call fails with ErrUnavailable meanwhile, and the store recovers by
// itself.
func TestRedisUnavailable(t *testing.T) {
	r := servicetest.StartRedis(t)
	s := newRedisStore(t, r.URL, testKey, time.Minute, 10)
	id, err := s.Put(t.Context(), login)
	if err != nil {
		t.Fatal(err)
	}
	r.Stop()
	if err := s.Ping(t.Context()); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Ping: got %v, want ErrUnavailable", err)
	}
	if _, err := s.Put(t.Context(), login); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Put: got %v, want ErrUnavailable", err)
	}
	if _, err := s.Has(t.Context(), id); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Has: got %v, want ErrUnavailable", err)
	}
	if _, err := s.Take(t.Context(), id); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Take: got %v, want ErrUnavailable", err)
	}
	r.Restart()
	if err := s.Ping(t.Context()); err != nil {
		t.Errorf("Ping after the restart: got %v, want nil", err)
	}
	id, err = s.Put(t.Context(), login)
	if err != nil {
		t.Fatalf("Put after the restart: got %v, want nil", err)
	}
	if _, err := s.Take(t.Context(), id); err != nil {
		t.Errorf("Take after the restart: got %v, want nil", err)
	}
}

// BenchmarkRedisRoundTrips is one credential's life on a real redis-server:
// Put (one round trip), Has (one, the page), Take (one, the start).
func BenchmarkRedisRoundTrips(b *testing.B) {
	r := servicetest.StartRedis(b)
	s, err := NewRedis(r.URL, testKey, time.Minute, 1<<30)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := b.Context()
	for b.Loop() {
		id, err := s.Put(ctx, login)
		if err != nil {
			b.Fatal(err)
		}
		if ok, err := s.Has(ctx, id); !ok || err != nil {
			b.Fatal(ok, err)
		}
		if _, err := s.Take(ctx, id); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMemory is the same life in the memory store.
func BenchmarkMemory(b *testing.B) {
	s, _ := NewMemory(testKey, time.Minute, 1<<30)
	defer s.Close()
	ctx := b.Context()
	for b.Loop() {
		id, _ := s.Put(ctx, login)
		s.Has(ctx, id)
		s.Take(ctx, id)
	}
}

// TestRedisHonoursDeadlines: a call to a Redis that hangs ends when the
// caller's context does (readiness probes, limits and the registry bound
// their calls so), whatever the client's own timeouts.
func TestRedisHonoursDeadlines(t *testing.T) {
	r := servicetest.StartRedis(t)
	opts, err := redisOptions(r.URL)
	if err != nil {
		t.Fatal(err)
	}
	opts.ReadTimeout, opts.WriteTimeout = time.Hour, time.Hour // only the context can end the call
	c := redis.NewClient(opts)
	defer c.Close()
	if err := c.Ping(t.Context()).Err(); err != nil {
		t.Fatal(err)
	}
	r.Pause()
	defer r.Continue()
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.Ping(ctx).Err() }()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Ping of a hung Redis: got %v, want the context's deadline", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Ping of a hung Redis outlived its context by 10 s")
	}
}
