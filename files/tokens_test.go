package files

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"sync"
)

// The gateway finds terminals by files token with terminal.Manager; the
// tests of this package use Tokens instead.

// Tokens issues files tokens and finds the terminal of one. The zero value
// is ready for use.
//
// A token is 32 random bytes (base64url). Tokens keeps only their SHA-256
// hashes and looks a token up by its hash: how long the comparison takes
// depends on the hash of the token tried, which tells an attacker nothing
// about the tokens issued (the constant-time comparison of hashed secrets).
type Tokens struct {
	mu       sync.Mutex
	sessions map[[sha256.Size]byte]Session
}

// Issue returns a new token for sess, valid until revoke is called (when
// the terminal ends). revoke is safe to call more than once.
func (t *Tokens) Issue(sess Session) (token string, revoke func()) {
	b := make([]byte, 32)
	rand.Read(b) // never fails; crashes the program when the system's source does
	token = base64.RawURLEncoding.EncodeToString(b)
	key := sha256.Sum256([]byte(token))
	t.mu.Lock()
	if t.sessions == nil {
		t.sessions = make(map[[sha256.Size]byte]Session)
	}
	t.sessions[key] = sess
	t.mu.Unlock()
	return token, func() {
		t.mu.Lock()
		delete(t.sessions, key)
		t.mu.Unlock()
	}
}

// tokenLen is the length of a token Issue returns.
const tokenLen = 43

// FilesSession returns the terminal token was issued for, if it is still
// valid.
func (t *Tokens) FilesSession(token string) (Session, bool) {
	if len(token) != tokenLen {
		return nil, false
	}
	key := sha256.Sum256([]byte(token))
	t.mu.Lock()
	defer t.mu.Unlock()
	sess, ok := t.sessions[key]
	return sess, ok
}
