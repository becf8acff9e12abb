package sshbridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
)

// Config holds the settings shared by every session.
type Config struct {
	// Term is the TERM value requested for the PTY, e.g. "xterm-256color".
	Term string
	// Timeout bounds TCP connect, SSH handshake, authentication and shell
	// start together.
	Timeout time.Duration
	// HostKeys verifies the server's host key when the Target does not pin
	// it. Nil accepts any key and logs its SHA256 fingerprint (the
	// behaviour of the server we replace), as PolicyAccept does.
	HostKeys *HostKeys
	// Logger receives connection events; nil discards them.
	Logger *slog.Logger
	// KeepaliveInterval and KeepaliveCount: a session's owner (package
	// terminal) probes the remote every KeepaliveInterval (Session.Probe)
	// and ends the session when KeepaliveCount probes in a row have gone
	// unanswered; 0 turns the probes off.
	KeepaliveInterval time.Duration
	KeepaliveCount    int
	// Dialer opens the TCP connection; nil uses a net.Dialer.
	Dialer interface {
		DialContext(ctx context.Context, network, addr string) (net.Conn, error)
	}
}

// WindowSize is a terminal size in character cells.
type WindowSize struct {
	Rows, Cols int
}

// DefaultWindowSize is used when the client has not told its size yet.
var DefaultWindowSize = WindowSize{Rows: 24, Cols: 80}

// Dial connects to the target, authenticates, and starts an interactive
// shell on a PTY of the given size, and serves what the remote sends on
// its own on a goroutine of its own (see Serve) until the connection ends.
func Dial(ctx context.Context, cfg Config, t Target, size WindowSize) (*Session, error) {
	s, err := Open(ctx, cfg, t, size)
	if err != nil {
		return nil, err
	}
	go Serve[struct{}](s, nil, nil)
	return s, nil
}

// Open is Dial without the goroutine: the caller must run Serve for the
// session's life, starting promptly once Open returns. The returned error wraps one of the
// package's Err values and never contains secrets. A refused host key is a
// *HostKeyError (it matches ErrHostKey); an invalid Target.HostKey matches
// ErrBadPin. A fingerprint pin does not say which of the server's keys it
// is, so Dial may connect up to once per key type the server has, each
// time stopping before authentication, until the server presents it.
func Open(ctx context.Context, cfg Config, t Target, size WindowSize) (*Session, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	addr := t.Addr()
	creds, err := newCredentials(t)
	if err != nil {
		return nil, err
	}
	defer creds.forget()
	auth := creds.methods()
	pin, err := ParseHostKeyPin(t.HostKey)
	if err != nil {
		return nil, fmt.Errorf("sshbridge: connect %s: %w", addr, err)
	}
	hostKey := cfg.HostKeys.newCheck(addr, pin, log)
	if cfg.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.Timeout)
		defer cancel()
	}
	var dialer = cfg.Dialer
	if dialer == nil {
		dialer = &net.Dialer{}
	}
	algos := hostKey.algorithms()
	for attempt := 1; ; attempt++ {
		var fingerprint string
		s, err := connect(ctx, dialer.DialContext, addr, &ssh.ClientConfig{
			User: t.User,
			Auth: auth,
			HostKeyCallback: func(host string, remote net.Addr, key ssh.PublicKey) error {
				fingerprint = ssh.FingerprintSHA256(plainKey(key))
				return hostKey.callback(host, remote, key)
			},
			HostKeyAlgorithms: algos,
		}, cfg.Term, size)
		if err == nil {
			s.auth, s.key = creds.method, fingerprint
			log.Debug("ssh shell started", "addr", addr)
			return s, nil
		}
		if algos, err = hostKey.retry(attempt, algos, err); err != nil {
			return nil, err
		}
	}
}

// connect dials addr with dial and starts the shell.
func connect(ctx context.Context, dial func(ctx context.Context, network, addr string) (net.Conn, error),
	addr string, cc *ssh.ClientConfig, term string, size WindowSize) (*Session, error) {
	conn, err := dial(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("sshbridge: dial %s: %w", addr, classifyNetErr(ctx, err))
	}
	// Until the shell runs, cancelling ctx (or its deadline) closes the
	// connection, which aborts whatever step is blocked on it.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	s, err := start(conn, addr, cc, term, size)
	if !stop() {
		if s != nil {
			s.Close()
		}
		return nil, fmt.Errorf("sshbridge: connect %s: %w", addr, classifyNetErr(ctx, ctx.Err()))
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("sshbridge: connect %s: %w", addr, err)
	}
	return s, nil
}

// start runs the SSH handshake on conn and opens the shell.
func start(conn net.Conn, addr string, cc *ssh.ClientConfig, term string, size WindowSize) (*Session, error) {
	c, chans, reqs, err := ssh.NewClientConn(newPacedConn(conn), addr, cc)
	if err != nil {
		return nil, classifyHandshakeErr(err)
	}
	ch, chReq, err := openShell(c, term, size)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("%w: %w", ErrSession, err)
	}
	return &Session{conn: c, ch: ch, reqs: reqs, chans: chans, chReq: chReq}, nil
}

// credentials authenticate one Dial. x/crypto keeps the ClientConfig, and
// so its auth methods, as long as the connection lives; the methods read
// the password and the key from here, and Dial forgets them when it
// returns, so that they are not kept in memory for the whole session.
type credentials struct {
	password string
	signer   ssh.Signer
	// method is the method last tried: after a login, the one that
	// succeeded (x/crypto tries them one at a time).
	method string
}

func newCredentials(t Target) (*credentials, error) {
	if len(t.PrivateKey) > 0 {
		signer, err := ParsePrivateKey(t.PrivateKey, t.Passphrase)
		if err != nil {
			return nil, err
		}
		return &credentials{signer: signer}, nil
	}
	return &credentials{password: t.Password}, nil
}

// methods returns the auth methods for the ClientConfig.
func (c *credentials) methods() []ssh.AuthMethod {
	if c.signer != nil {
		return []ssh.AuthMethod{ssh.PublicKeysCallback(func() ([]ssh.Signer, error) {
			c.method = "publickey"
			if c.signer == nil {
				return nil, nil
			}
			return []ssh.Signer{c.signer}, nil
		})}
	}
	return []ssh.AuthMethod{
		ssh.PasswordCallback(func() (string, error) {
			c.method = "password"
			return c.password, nil
		}),
		// PAM servers often offer only keyboard-interactive: answer its
		// hidden prompts with the password, once.
		ssh.KeyboardInteractive(c.keyboardInteractive(answerOnce(func() string { return c.password }))),
	}
}

// keyboardInteractive notes that the keyboard-interactive method is tried.
func (c *credentials) keyboardInteractive(answer ssh.KeyboardInteractiveChallenge) ssh.KeyboardInteractiveChallenge {
	return func(name, instruction string, questions []string, echos []bool) ([]string, error) {
		c.method = "keyboard-interactive"
		return answer(name, instruction, questions, echos)
	}
}

// forget drops the password and the key. Authentication happens only
// during Dial, on its goroutine, so forget must be called after it.
func (c *credentials) forget() {
	c.password, c.signer = "", nil
}

// answerOnce answers a keyboard-interactive round: hidden prompts get the
// password, visible ones an empty line. A second round with prompts means
// the password was refused, so it gives up instead of looping.
func answerOnce(password func() string) ssh.KeyboardInteractiveChallenge {
	answered := false
	return func(_, _ string, questions []string, echos []bool) ([]string, error) {
		if len(questions) == 0 {
			return nil, nil
		}
		if answered {
			return nil, ErrAuth
		}
		answered = true
		answers := make([]string, len(questions))
		for i := range questions {
			if i < len(echos) && !echos[i] {
				answers[i] = password()
			}
		}
		return answers, nil
	}
}

func classifyNetErr(ctx context.Context, err error) error {
	var dnsErr *net.DNSError
	switch {
	case errors.Is(err, context.Canceled):
		return err
	case errors.As(err, &dnsErr):
		// The name has no address: none exists, or no DNS server answered
		// in time (a machine without DNS); either way there is no host to
		// try, which "timed out" would not say.
		return ErrHostNotFound
	case errors.Is(err, context.DeadlineExceeded), errors.Is(ctx.Err(), context.DeadlineExceeded):
		return ErrTimeout
	case errors.Is(err, syscall.ECONNREFUSED):
		return ErrRefused
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH),
		errors.Is(err, syscall.EADDRNOTAVAIL):
		return ErrUnreachable
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return ErrTimeout
	}
	return fmt.Errorf("%w: %w", ErrUnreachable, err)
}

func classifyHandshakeErr(err error) error {
	msg := err.Error()
	switch {
	case errors.Is(err, ErrHostKey):
		return err
	case strings.Contains(msg, "unable to authenticate"), errors.Is(err, ErrAuth):
		return ErrAuth
	}
	return fmt.Errorf("%w: %w", ErrHandshake, err)
}
