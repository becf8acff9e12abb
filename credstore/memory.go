// Package credstore keeps credentials between the HTTP call that creates
// them and the terminal that uses them: sealed (AES-256-GCM), single use,
// with a time to live.
//
// Concurrency: a store is safe for concurrent use.
package credstore

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/alfresco-ssh/alfresco-ssh/sshbridge"
	"github.com/google/uuid"
)

// Errors returned by the credential store.
var (
	ErrCredentialsNotFound = errors.New("credentials not found")
	ErrStoreFull           = errors.New("too many pending credentials")
)

// Memory holds credentials between the HTTP call that creates them and the
// terminal that uses them. Entries live only in memory, sealed with
// AES-256-GCM under the process key; each is taken at most once and
// removed when its time to live runs out. Safe for concurrent use.
type Memory struct {
	aead cipher.AEAD
	ttl  time.Duration
	max  int

	mu      sync.Mutex
	entries map[string]*sealed
}

type sealed struct {
	blob  []byte // nonce || ciphertext
	timer *time.Timer
}

// storedTarget is the plaintext form of a sealed entry.
type storedTarget struct {
	Host       string `json:"h"`
	Port       int    `json:"p"`
	User       string `json:"u"`
	Password   string `json:"pw,omitempty"`
	PrivateKey []byte `json:"k,omitempty"`
	Passphrase string `json:"pp,omitempty"`
	HostKey    string `json:"hk,omitempty"`
}

// NewMemory returns a store whose entries expire after ttl, holding at most
// max entries. key is the process secret (any length, typically the 32
// bytes of a Fernet key); nil means a fresh random key.
func NewMemory(key []byte, ttl time.Duration, max int) (*Memory, error) {
	if key == nil {
		key = make([]byte, 32)
		rand.Read(key)
	}
	aesKey, err := hkdf.Key(sha256.New, key, nil, "alfresco-ssh credentials v1", 32)
	if err != nil {
		return nil, fmt.Errorf("credstore: derive credentials key: %w", err)
	}
	block, err := aes.NewCipher(aesKey)
	if err != nil {
		return nil, fmt.Errorf("credstore: credentials cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("credstore: credentials cipher: %w", err)
	}
	return &Memory{aead: aead, ttl: ttl, max: max, entries: make(map[string]*sealed)}, nil
}

// Put seals t and returns its new id, a random UUID.
func (s *Memory) Put(t sshbridge.Target) (string, error) {
	plain, err := json.Marshal(storedTarget(t))
	if err != nil {
		return "", fmt.Errorf("credstore: encode credentials: %w", err)
	}
	id := uuid.NewString()
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plain)+s.aead.Overhead())
	rand.Read(nonce)
	blob := s.aead.Seal(nonce, nonce, plain, []byte(id))
	clear(plain)

	s.mu.Lock()
	defer s.mu.Unlock()
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
func (s *Memory) Take(id string) (sshbridge.Target, error) {
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
	ns := s.aead.NonceSize()
	plain, err := s.aead.Open(nil, e.blob[:ns], e.blob[ns:], []byte(id))
	clear(e.blob)
	if err != nil {
		return sshbridge.Target{}, fmt.Errorf("credstore: open credentials: %w", err)
	}
	var st storedTarget
	err = json.Unmarshal(plain, &st)
	clear(plain)
	if err != nil {
		return sshbridge.Target{}, fmt.Errorf("credstore: decode credentials: %w", err)
	}
	return sshbridge.Target(st), nil
}

// Has reports whether id is waiting to be used.
func (s *Memory) Has(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.entries[id]
	return ok
}

// Len returns the number of pending entries.
func (s *Memory) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.entries)
}

// Close drops every entry.
func (s *Memory) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, e := range s.entries {
		e.timer.Stop()
		clear(e.blob)
		delete(s.entries, id)
	}
}

func (s *Memory) expire(id string, e *sealed) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.entries[id] == e {
		delete(s.entries, id)
		clear(e.blob)
	}
}
