package credstore

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/alfresco-ssh/alfresco-ssh/internal/servicetest"
	"github.com/alfresco-ssh/alfresco-ssh/internal/waitfor"
	"github.com/alfresco-ssh/alfresco-ssh/sshbridge"
)

// store is the method set both backends share.
type store interface {
	Put(context.Context, sshbridge.Target) (string, error)
	Take(context.Context, string) (sshbridge.Target, error)
	Has(context.Context, string) (bool, error)
	Ping(context.Context) error
	Close() error
}

var (
	_ store = (*Memory)(nil)
	_ store = (*Redis)(nil)
)

var testKey = bytes.Repeat([]byte{7}, 32)

// backend is one kind of store. Stores that one started backend opens
// share their data when the kind is shared (one Redis), as the nodes of a
// deployment do.
type backend struct {
	name   string
	shared bool
	start  func(t *testing.T) started
}

type started struct {
	open func(t *testing.T, ttl time.Duration, max int) store
	// advance makes ttl pass for a store that keeps time of its own
	// (miniredis); the others expire by the clock.
	advance func(ttl time.Duration)
}

func newRedisStore(t *testing.T, url string, key []byte, ttl time.Duration, max int) *Redis {
	t.Helper()
	s, err := NewRedis(url, key, ttl, max)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// backends are the memory store, Redis as miniredis (fake time), and a
// real redis-server.
var backends = []backend{
	{name: "memory", start: func(t *testing.T) started {
		return started{open: func(t *testing.T, ttl time.Duration, max int) store {
			s, err := NewMemory(testKey, ttl, max)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}, advance: func(time.Duration) {}}
	}},
	{name: "miniredis", shared: true, start: func(t *testing.T) started {
		m := miniredis.RunT(t)
		now := time.Now()
		m.SetTime(now) // what TIME answers the script: stands still until advanced
		return started{open: func(t *testing.T, ttl time.Duration, max int) store {
			return newRedisStore(t, "redis://"+m.Addr(), testKey, ttl, max)
		}, advance: func(ttl time.Duration) {
			m.FastForward(ttl)
			now = now.Add(ttl)
			m.SetTime(now)
		}}
	}},
	{name: "redis-server", shared: true, start: func(t *testing.T) started {
		r := servicetest.StartRedis(t)
		return started{open: func(t *testing.T, ttl time.Duration, max int) store {
			return newRedisStore(t, r.URL, testKey, ttl, max)
		}, advance: func(time.Duration) {}}
	}},
}

// forEach runs test once per backend.
func forEach(t *testing.T, test func(t *testing.T, b backend, s started)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { test(t, b, b.start(t)) })
	}
}

func has(t *testing.T, s store, id string) bool {
	t.Helper()
	ok, err := s.Has(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

var login = sshbridge.Target{Host: "h", Port: 2222, User: "u", Password: "hunter2-secret", PrivateKey: []byte("KEY")}

func TestTakeOnce(t *testing.T) {
	forEach(t, func(t *testing.T, _ backend, b started) {
		s := b.open(t, time.Minute, 10)
		id, err := s.Put(t.Context(), login)
		if err != nil {
			t.Fatal(err)
		}
		if !has(t, s, id) {
			t.Fatal("got Has false, want true before Take")
		}
		got, err := s.Take(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if got.Host != login.Host || got.Port != login.Port || got.User != login.User ||
			got.Password != login.Password || !bytes.Equal(got.PrivateKey, login.PrivateKey) {
			t.Errorf("got %+v, want %+v", got, login)
		}
		if _, err := s.Take(t.Context(), id); !errors.Is(err, ErrCredentialsNotFound) {
			t.Errorf("second Take: got %v, want ErrCredentialsNotFound", err)
		}
		if has(t, s, id) {
			t.Error("got Has true after Take, want false")
		}
		for _, bad := range []string{"", "nope", "*", id + "x", "../" + id} {
			if _, err := s.Take(t.Context(), bad); !errors.Is(err, ErrCredentialsNotFound) {
				t.Errorf("Take(%q): got %v, want ErrCredentialsNotFound", bad, err)
			}
		}
	})
}

// TestConcurrentTake races 50 takers, spread over five stores of one
// deployment when the backend is shared, for one id.
func TestConcurrentTake(t *testing.T) {
	forEach(t, func(t *testing.T, b backend, st started) {
		stores := []store{st.open(t, time.Minute, 10)}
		if b.shared {
			for range 4 {
				stores = append(stores, st.open(t, time.Minute, 10))
			}
		}
		for round := range 5 {
			id, err := stores[round%len(stores)].Put(t.Context(), login)
			if err != nil {
				t.Fatal(err)
			}
			var wins atomic.Int32
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := range 50 {
				wg.Go(func() {
					<-start
					_, err := stores[i%len(stores)].Take(context.Background(), id)
					if err == nil {
						wins.Add(1)
					} else if !errors.Is(err, ErrCredentialsNotFound) {
						t.Errorf("Take: got %v, want nil or ErrCredentialsNotFound", err)
					}
				})
			}
			close(start)
			wg.Wait()
			if wins.Load() != 1 {
				t.Errorf("round %d: got %d winners, want exactly 1", round, wins.Load())
			}
		}
	})
}

func TestExpires(t *testing.T) {
	forEach(t, func(t *testing.T, _ backend, b started) {
		const ttl = 50 * time.Millisecond
		s := b.open(t, ttl, 10)
		id, err := s.Put(t.Context(), login)
		if err != nil {
			t.Fatal(err)
		}
		b.advance(ttl)
		waitfor.Cond(t, "the entry to expire", func() bool { return !has(t, s, id) })
		if _, err := s.Take(t.Context(), id); !errors.Is(err, ErrCredentialsNotFound) {
			t.Errorf("got %v, want ErrCredentialsNotFound after expiry", err)
		}
	})
}

// TestBounded checks --max-credentials: across every store of a shared
// backend, and again once entries were taken or expired.
func TestBounded(t *testing.T) {
	forEach(t, func(t *testing.T, bk backend, b started) {
		const ttl = time.Second // long enough for the steps before expiry on a loaded machine
		a, c := b.open(t, ttl, 3), b.open(t, ttl, 3)
		if !bk.shared {
			c = a
		}
		var ids []string
		for i := range 3 {
			id, err := []store{a, c}[i%2].Put(t.Context(), login)
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, id)
		}
		for _, s := range []store{a, c} {
			if id, err := s.Put(t.Context(), login); !errors.Is(err, ErrStoreFull) || id != "" {
				t.Fatalf("got %q, %v; want ErrStoreFull", id, err)
			}
		}
		if _, err := c.Take(t.Context(), ids[0]); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Put(t.Context(), login); err != nil {
			t.Fatalf("after a Take: got %v, want room for one", err)
		}
		b.advance(ttl)
		waitfor.Cond(t, "the entries to expire", func() bool { return !has(t, a, ids[1]) && !has(t, a, ids[2]) })
		for range 2 {
			if _, err := c.Put(t.Context(), login); err != nil {
				t.Fatalf("after expiry: got %v, want room", err)
			}
		}
	})
}

// TestSharedKey: a store with the same key opens another's entries, a
// store with another key does not.
func TestSharedKey(t *testing.T) {
	forEach(t, func(t *testing.T, bk backend, b started) {
		if !bk.shared {
			t.Skip("entries of the memory store are not shared")
		}
		a := b.open(t, time.Minute, 10)
		same := b.open(t, time.Minute, 10)
		id, _ := a.Put(t.Context(), login)
		if _, err := same.Take(t.Context(), id); err != nil {
			t.Errorf("got %v, want a store with the same key to open the entry", err)
		}
	})
}

func TestMemorySealed(t *testing.T) {
	s, _ := NewMemory(nil, time.Minute, 10)
	t.Cleanup(func() { s.Close() })
	id, _ := s.Put(t.Context(), login)
	s.mu.Lock()
	blob := bytes.Clone(s.entries[id].blob)
	s.mu.Unlock()
	if bytes.Contains(blob, []byte("hunter2-secret")) || bytes.Contains(blob, []byte(`"h"`)) {
		t.Error("stored entry contains plaintext, want it sealed")
	}
	other, _ := NewMemory(nil, time.Minute, 10)
	t.Cleanup(func() { other.Close() })
	if _, err := other.sealer.open(id, blob); err == nil {
		t.Error("got success, want a store with another key to fail")
	}
	if _, err := s.sealer.open(strings.Replace(id, "-4", "-5", 1), blob); err == nil {
		t.Error("got success, want the entry bound to its id")
	}
}
