package credstore

import (
	"bytes"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alfresco-ssh/alfresco-ssh/sshbridge"
)

func newTestStore(t *testing.T, ttl time.Duration, max int) *Memory {
	t.Helper()
	s, err := NewMemory(nil, ttl, max)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func TestStoreTakeOnce(t *testing.T) {
	s := newTestStore(t, time.Minute, 10)
	in := sshbridge.Target{Host: "h", Port: 2222, User: "u", PrivateKey: []byte("KEY")}
	id, err := s.Put(in)
	if err != nil {
		t.Fatal(err)
	}
	if !s.Has(id) {
		t.Fatal("got Has false, want true before Take")
	}
	got, err := s.Take(id)
	if err != nil {
		t.Fatal(err)
	}
	if got.Host != in.Host || got.Port != in.Port || got.User != in.User || !bytes.Equal(got.PrivateKey, in.PrivateKey) {
		t.Errorf("got %+v, want %+v", got, in)
	}
	if _, err := s.Take(id); !errors.Is(err, ErrCredentialsNotFound) {
		t.Errorf("second Take: got %v, want ErrCredentialsNotFound", err)
	}
}

func TestStoreSealed(t *testing.T) {
	s := newTestStore(t, time.Minute, 10)
	id, _ := s.Put(sshbridge.Target{Host: "h", User: "u", Password: "hunter2-secret"})
	s.mu.Lock()
	blob := bytes.Clone(s.entries[id].blob)
	s.mu.Unlock()
	if bytes.Contains(blob, []byte("hunter2-secret")) || bytes.Contains(blob, []byte(`"h"`)) {
		t.Error("stored entry contains plaintext, want it sealed")
	}
}

func TestStoreConcurrentTake(t *testing.T) {
	s := newTestStore(t, time.Minute, 10)
	id, _ := s.Put(sshbridge.Target{Host: "h", User: "u", Password: "p"})
	var wins atomic.Int32
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if _, err := s.Take(id); err == nil {
				wins.Add(1)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Errorf("got %d winners, want exactly 1", wins.Load())
	}
}

func TestStoreExpires(t *testing.T) {
	s := newTestStore(t, 20*time.Millisecond, 10)
	id, _ := s.Put(sshbridge.Target{Host: "h", User: "u", Password: "p"})
	deadline := time.Now().Add(5 * time.Second)
	for s.Len() > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if s.Len() != 0 {
		t.Fatalf("got %d entries after the TTL, want 0", s.Len())
	}
	if _, err := s.Take(id); !errors.Is(err, ErrCredentialsNotFound) {
		t.Errorf("got %v, want ErrCredentialsNotFound after expiry", err)
	}
}

func TestStoreBounded(t *testing.T) {
	s := newTestStore(t, time.Minute, 3)
	for range 3 {
		if _, err := s.Put(sshbridge.Target{Host: "h", User: "u", Password: "p"}); err != nil {
			t.Fatal(err)
		}
	}
	id, err := s.Put(sshbridge.Target{Host: "h", User: "u", Password: "p"})
	if !errors.Is(err, ErrStoreFull) || id != "" {
		t.Fatalf("got %q, %v; want ErrStoreFull", id, err)
	}
}

func TestStoreSharedKey(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	a, _ := NewMemory(key, time.Minute, 10)
	b, _ := NewMemory(key, time.Minute, 10)
	c, _ := NewMemory(nil, time.Minute, 10)
	t.Cleanup(a.Close)
	t.Cleanup(b.Close)
	t.Cleanup(c.Close)
	id, _ := a.Put(sshbridge.Target{Host: "h", User: "u", Password: "p"})
	a.mu.Lock()
	e := a.entries[id]
	a.mu.Unlock()
	ns := a.sealer.aead.NonceSize()
	if _, err := b.sealer.aead.Open(nil, e.blob[:ns], e.blob[ns:], []byte(id)); err != nil {
		t.Errorf("got %v, want a store with the same key to open the entry", err)
	}
	if _, err := c.sealer.aead.Open(nil, e.blob[:ns], e.blob[ns:], []byte(id)); err == nil {
		t.Error("got success, want a store with another key to fail")
	}
}
