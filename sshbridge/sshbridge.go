// Package sshbridge opens interactive SSH shells for the gateway.
//
// It owns the SSH side of a terminal: dialling with a deadline, verifying
// the server's host key (HostKeys: a policy and a known_hosts file;
// HostKeyPin: a key pinned by the Target), authenticating with a password
// (also answered through keyboard-interactive) or a private key, requesting
// a PTY and a shell, and exposing the result as a Session with
// reader/writer methods, Resize and Close; Session.SFTP opens file
// transfers on the same connection. It knows nothing of HTTP or Socket.IO.
//
// Concurrency: Dial may be called from any goroutine and is cancelled by its
// context; one HostKeys serves concurrent Dials. On a Session, Read (and
// reading Stderr) must each be used by one goroutine at a time; Write,
// Resize, SFTP and Close are safe to call concurrently with them and with
// each other. Close is idempotent and unblocks pending reads and writes.
package sshbridge

import (
	"errors"
	"net"
	"strconv"
)

// Errors that classify why a session could not be opened. Dial wraps one of
// them (check with errors.Is) so callers can tell the user what happened
// without showing internal error text.
var (
	ErrAuth         = errors.New("authentication failed")
	ErrRefused      = errors.New("connection refused")
	ErrUnreachable  = errors.New("host unreachable")
	ErrHostNotFound = errors.New("host not found")
	ErrTimeout      = errors.New("timed out")
	ErrHostKey      = errors.New("host key rejected")
	ErrHandshake    = errors.New("ssh handshake failed")
	ErrSession      = errors.New("shell could not be started")
	ErrBadKey       = errors.New("private key could not be used")
)

// Target says where to connect and how to authenticate. Exactly one of
// Password and PrivateKey is set.
type Target struct {
	Host       string
	Port       int
	User       string
	Password   string
	PrivateKey []byte // PEM (PKCS#1, PKCS#8, SEC 1) or OpenSSH format
	Passphrase string // decrypts an encrypted PrivateKey
	// HostKey optionally pins the server's host key: an OpenSSH public key
	// line or a "SHA256:" fingerprint, as ParseHostKeyPin accepts. A pin
	// overrides Config.HostKeys. Validate it with ParseHostKeyPin when the
	// Target is made: Dial fails with ErrBadPin on an invalid one.
	HostKey string
}

// Addr returns the host:port to dial.
func (t Target) Addr() string {
	host := t.Host
	if len(host) > 2 && host[0] == '[' && host[len(host)-1] == ']' {
		host = host[1 : len(host)-1]
	}
	return net.JoinHostPort(host, strconv.Itoa(t.Port))
}
