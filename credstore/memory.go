// Package credstore keeps credentials between the HTTP call that creates
// them and the terminal that uses them: sealed (AES-256-GCM), single use,
// with a time to live. Two backends share one method set: Memory (this
// process only) and Redis (every node sharing the Redis server and the
// key), which holds nothing but the ciphertext.
//
// Concurrency: a store is safe for concurrent use.
package credstore

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/alfresco-ssh/alfresco-ssh/sshbridge"
	"github.com/google/uuid"
)

// Errors returned by the credential store.
var (
	ErrCredentialsNotFound = errors.New("credentials not found")
	ErrStoreFull           = errors.New("too many pending credentials")
	// ErrClosed: the store was closed (the gateway is shutting down).
	ErrClosed = errors.New("credential store closed")
	// ErrUnavailable wraps every failure to reach a shared store.
	ErrUnavailable = errors.New("credential store unavailable")
)

// Memory holds credentials between the HTTP call that creates them and the
// terminal that uses them. Entries live only in memory, sealed with
// AES-256-GCM under the process key; each is taken at most once and
// removed when its time to live runs out. Safe for concurrent use.
type Memory struct {
	sealer *sealer
	ttl    time.Duration
	max    int

	mu      sync.Mutex
	entries map[string]*sealed
	closed  bool // Close: Put fails
}

type sealed struct {
	blob  []byte // nonce || ciphertext
	timer *time.Timer
}

// NewMemory returns a store whose entries expire after ttl, holding at most
// max entries. key is the process secret (any length, typically the 32
// bytes of a Fernet key); nil means a fresh random key.
func NewMemory(key []byte, ttl time.Duration, max int) (*Memory, error) {
	sl, err := newSealer(key)
	if err != nil {
		return nil, err
	}
	return &Memory{sealer: sl, ttl: ttl, max: max, entries: make(map[string]*sealed)}, nil
}

// Put seals t and returns its new id, a random UUID.
func (s *Memory) Put(_ context.Context, t sshbridge.Target) (string, error) {
	id := uuid.NewString()
	blob, err := s.sealer.seal(id, t)
	if err != nil {
		return "", err
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return "", ErrClosed
	}
	if len(s.entries) >= s.max {
		return "", ErrStoreFull
	}
	e := &sealed{blob: blob}
	e.timer = time.AfterFunc(s.ttl, func() { s.expire(id, e) })
	s.entries[id] = e
	return id, nil
}

// Take removes the entry id and returns its credentials. Of several callers
// racing for one id, exactly one succeeds.
func (s *Memory) Take(_ context.Context, id string) (sshbridge.Target, error) {
	s.mu.Lock()
	e, ok := s.entries[id]
	if ok {
		delete(s.entries, id)
		e.timer.Stop()
	}
	s.mu.Unlock()
	if !ok {
		return sshbridge.Target{}, ErrCredentialsNotFound
	}
	t, err := s.sealer.open(id, e.blob)
	clear(e.blob)
	return t, err
}

// Has reports whether id is waiting to be used.
func (s *Memory) Has(_ context.Context, id string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.entries[id]
	return ok, nil
}

// Ping reports whether the store can take new credentials: always.
func (s *Memory) Ping(context.Context) error { return nil }

// Len returns the number of pending entries.
func (s *Memory) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.entries)
}

// Close drops every entry; Put fails from then on.
func (s *Memory) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for id, e := range s.entries {
		e.timer.Stop()
		clear(e.blob)
		delete(s.entries, id)
	}
	return nil
}

func (s *Memory) expire(id string, e *sealed) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.entries[id] == e {
		delete(s.entries, id)
		clear(e.blob)
	}
}
