package sshbridge_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	mathrand "math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/alfresco-ssh/alfresco-ssh/sshbridge"
)

// waitTimeout bounds every wait for an event in these tests. It is a
// deadline for a failure, not a delay: passing tests never reach it.
const waitTimeout = 10 * time.Second

// serverOptions configures a testServer.
type serverOptions struct {
	// User is the only user name accepted.
	User string
	// Password is accepted by "password" auth, or by "keyboard-interactive"
	// when KeyboardInteractiveOnly is set. Empty disables both.
	Password string
	// KeyboardInteractiveOnly offers keyboard-interactive (a hidden
	// "Password: " prompt, repeated on a wrong answer) instead of password.
	KeyboardInteractiveOnly bool
	// AuthorizedKeys are accepted by "publickey" auth.
	AuthorizedKeys []ssh.PublicKey
	// RejectSessions refuses every "session" channel.
	RejectSessions bool
	// HostKeys are the host keys (or certificates) the server offers; nil
	// offers the shared ed25519 key of hostSigner.
	HostKeys []ssh.Signer
}

// maxKeyboardRounds is how often the keyboard-interactive server repeats
// its prompt after a wrong answer, like PAM does.
const maxKeyboardRounds = 5

// ptyEvent is a "pty-req" or "window-change" request as the server saw it.
type ptyEvent struct {
	Kind          string // "pty-req" or "window-change"
	Term          string // pty-req only
	Rows, Cols    int
	Width, Height int    // in pixels
	Modes         string // pty-req only: the decoded modes, as fmt prints a map[byte]uint32
}

// testServer is an in-process SSH server on 127.0.0.1. Its sessions run a
// tiny line shell (see shell). It stops when the test ends: Cleanup closes
// the listener and every connection and waits for all its goroutines.
type testServer struct {
	opts    serverOptions
	cfg     *ssh.ServerConfig
	ln      net.Listener
	hostKey ssh.PublicKey

	// events receives pty-req and window-change requests in arrival order.
	events chan ptyEvent
	// keyboardAnswers counts keyboard-interactive rounds the client answered.
	keyboardAnswers atomic.Int32

	done chan struct{} // closed at cleanup; unblocks event sends
	wg   sync.WaitGroup

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

var hostSigner = sync.OnceValues(func() (ssh.Signer, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	return ssh.NewSignerFromKey(priv)
})

// passwordServer starts a test server for user "u" with password "pw", and
// returns it with a target that logs in.
func passwordServer(t *testing.T) (*testServer, sshbridge.Target) {
	t.Helper()
	srv := newTestServer(t, serverOptions{User: "u", Password: "pw"})
	target := srv.Target()
	target.Password = "pw"
	return srv, target
}

func newTestServer(t *testing.T, opts serverOptions) *testServer {
	t.Helper()
	signers := opts.HostKeys
	if len(signers) == 0 {
		signer, err := hostSigner()
		if err != nil {
			t.Fatalf("host key: %v", err)
		}
		signers = []ssh.Signer{signer}
	}
	s := &testServer{
		opts:    opts,
		hostKey: signers[0].PublicKey(),
		events:  make(chan ptyEvent, 16),
		done:    make(chan struct{}),
		conns:   make(map[net.Conn]struct{}),
	}
	s.cfg = &ssh.ServerConfig{}
	for _, signer := range signers {
		s.cfg.AddHostKey(signer)
	}
	if opts.Password != "" && opts.KeyboardInteractiveOnly {
		s.cfg.KeyboardInteractiveCallback = s.keyboardInteractive
	} else if opts.Password != "" {
		s.cfg.PasswordCallback = func(c ssh.ConnMetadata, password []byte) (*ssh.Permissions, error) {
			if c.User() == opts.User && string(password) == opts.Password {
				return nil, nil
			}
			return nil, errors.New("wrong password")
		}
	}
	if len(opts.AuthorizedKeys) > 0 {
		s.cfg.PublicKeyCallback = func(c ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			for _, k := range opts.AuthorizedKeys {
				if c.User() == opts.User && bytes.Equal(k.Marshal(), key.Marshal()) {
					return nil, nil
				}
			}
			return nil, errors.New("key not authorized")
		}
	}

	var err error
	s.ln, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	s.wg.Go(s.acceptLoop)
	t.Cleanup(s.stop)
	return s
}

// Target returns a Target for this server with the configured user.
func (s *testServer) Target() sshbridge.Target {
	return targetFor(s.ln.Addr(), s.opts.User)
}

func targetFor(addr net.Addr, user string) sshbridge.Target {
	a := addr.(*net.TCPAddr)
	return sshbridge.Target{Host: a.IP.String(), Port: a.Port, User: user}
}

// nextEvent returns the next pty-req or window-change the server received.
func (s *testServer) nextEvent(t *testing.T) ptyEvent {
	t.Helper()
	return recv(t, s.events, "a pty request at the server")
}

func (s *testServer) stop() {
	close(s.done)
	s.ln.Close()
	s.mu.Lock()
	s.closed = true
	conns := s.conns
	s.conns = nil
	s.mu.Unlock()
	for c := range conns {
		c.Close()
	}
	s.wg.Wait()
}

func (s *testServer) acceptLoop() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Go(func() { s.serveConn(c) })
	}
}

func (s *testServer) serveConn(c net.Conn) {
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		c.Close()
	}()
	sc, chans, reqs, err := ssh.NewServerConn(c, s.cfg)
	if err != nil {
		return
	}
	defer sc.Close()
	s.wg.Go(func() { ssh.DiscardRequests(reqs) })
	for nc := range chans {
		if nc.ChannelType() != "session" || s.opts.RejectSessions {
			nc.Reject(ssh.Prohibited, "sessions are not allowed")
			continue
		}
		s.wg.Go(func() { s.serveSession(sc, nc) })
	}
}

func (s *testServer) keyboardInteractive(c ssh.ConnMetadata, challenge ssh.KeyboardInteractiveChallenge) (*ssh.Permissions, error) {
	for range maxKeyboardRounds {
		answers, err := challenge(c.User(), "", []string{"Password: "}, []bool{false})
		if err != nil {
			return nil, err
		}
		s.keyboardAnswers.Add(1)
		if c.User() == s.opts.User && len(answers) == 1 && answers[0] == s.opts.Password {
			return nil, nil
		}
	}
	return nil, errors.New("too many wrong answers")
}

// termSize is the PTY size of one session, shared by its request handler
// and its shell.
type termSize struct {
	mu         sync.Mutex
	rows, cols int
}

func (z *termSize) set(rows, cols uint32) {
	z.mu.Lock()
	z.rows, z.cols = int(rows), int(cols)
	z.mu.Unlock()
}

func (z *termSize) get() (rows, cols int) {
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.rows, z.cols
}

func (s *testServer) event(ev ptyEvent) {
	select {
	case s.events <- ev:
	case <-s.done:
	}
}

func (s *testServer) serveSession(conn ssh.Conn, nc ssh.NewChannel) {
	ch, reqs, err := nc.Accept()
	if err != nil {
		return
	}
	defer ch.Close()
	size := new(termSize)
	shellStarted := false
	for req := range reqs {
		switch req.Type {
		case "pty-req":
			// RFC 4254 6.2: TERM, then width (columns) before height (rows).
			var m struct {
				Term                      string
				Cols, Rows, Width, Height uint32
				Modes                     string
			}
			if err := ssh.Unmarshal(req.Payload, &m); err != nil {
				req.Reply(false, nil)
				continue
			}
			modes, ok := decodeModes(m.Modes)
			if !ok {
				req.Reply(false, nil)
				continue
			}
			size.set(m.Rows, m.Cols)
			s.event(ptyEvent{Kind: req.Type, Term: m.Term, Rows: int(m.Rows), Cols: int(m.Cols),
				Width: int(m.Width), Height: int(m.Height), Modes: fmt.Sprint(modes)})
			req.Reply(true, nil)
		case "window-change":
			// RFC 4254 6.7: columns before rows.
			var m struct{ Cols, Rows, Width, Height uint32 }
			if err := ssh.Unmarshal(req.Payload, &m); err != nil {
				req.Reply(false, nil)
				continue
			}
			size.set(m.Rows, m.Cols)
			s.event(ptyEvent{Kind: req.Type, Rows: int(m.Rows), Cols: int(m.Cols),
				Width: int(m.Width), Height: int(m.Height)})
			req.Reply(true, nil)
		case "shell":
			if shellStarted {
				req.Reply(false, nil)
				continue
			}
			shellStarted = true
			req.Reply(true, nil)
			s.wg.Go(func() { shell(conn, ch, size) })
		default:
			req.Reply(false, nil)
		}
	}
}

// shell echoes its input like a PTY in echo mode and runs each line ended
// by CR as a command:
//
//	size      prints "rows cols"
//	flood N   writes floodData(N)
//	stderr X  writes X to the extended-data (stderr) stream
//	probe     sends what an SSH server may send the client on its own,
//	          each wanting a reply, and prints the outcomes (see probe)
//	exit      sends exit-status 0 and closes the channel
//
// Other lines do nothing.
func shell(conn ssh.Conn, ch ssh.Channel, size *termSize) {
	defer ch.Close()
	buf := make([]byte, 4096)
	var line, echo []byte
	for {
		n, err := ch.Read(buf)
		for _, b := range buf[:n] {
			if b != '\r' && b != '\n' {
				line = append(line, b)
				echo = append(echo, b)
				continue
			}
			echo = append(echo, '\r', '\n')
			if _, err := ch.Write(echo); err != nil {
				return
			}
			echo = echo[:0]
			cmd := string(line)
			line = line[:0]
			if !runCommand(conn, ch, size, cmd) {
				return
			}
		}
		if len(echo) > 0 {
			if _, err := ch.Write(echo); err != nil {
				return
			}
			echo = echo[:0]
		}
		if err != nil {
			return
		}
	}
}

// runCommand runs one shell line and reports whether the shell goes on.
func runCommand(conn ssh.Conn, ch ssh.Channel, size *termSize, cmd string) bool {
	name, arg, _ := strings.Cut(cmd, " ")
	var err error
	switch name {
	case "size":
		rows, cols := size.get()
		_, err = fmt.Fprintf(ch, "%d %d\r\n", rows, cols)
	case "flood":
		n, convErr := strconv.Atoi(arg)
		if convErr != nil {
			_, err = fmt.Fprintf(ch, "flood: bad count %q\r\n", arg)
			break
		}
		_, err = ch.Write(floodData(n))
	case "stderr":
		_, err = ch.Stderr().Write([]byte(arg))
	case "probe":
		_, err = fmt.Fprintf(ch, "%s\r\n", probe(conn, ch))
	case "exit":
		ch.CloseWrite()
		ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{0}))
		return false
	}
	return err == nil
}

// probe sends a global keepalive@openssh.com request (as OpenSSH does with
// ClientAliveInterval), opens an "x11" channel and sends an
// eow@openssh.com request on the session channel, each wanting a reply,
// and describes what the client answered: probeWant when it declines both
// requests and rejects the channel as prohibited.
func probe(conn ssh.Conn, ch ssh.Channel) string {
	global, _, globalErr := conn.SendRequest("keepalive@openssh.com", true, nil)
	open := "accepted"
	if c, _, err := conn.OpenChannel("x11", nil); err == nil {
		c.Close()
	} else if oce, ok := errors.AsType[*ssh.OpenChannelError](err); ok {
		open = oce.Reason.String()
	} else {
		open = err.Error()
	}
	session, sessionErr := ch.SendRequest("eow@openssh.com", true, nil)
	return fmt.Sprintf("global %v %v; open %s; session %v %v", global, globalErr, open, session, sessionErr)
}

// probeWant is what probe prints for a client that declines and rejects.
const probeWant = "global false <nil>; open administratively prohibited; session false <nil>"

// decodeModes decodes the terminal modes of a pty-req (RFC 4254 section
// 8): an opcode byte and a uint32 each, up to TTY_OP_END (0), which must
// end the string. ok is false when the encoding is wrong.
func decodeModes(s string) (modes map[byte]uint32, ok bool) {
	modes = make(map[byte]uint32)
	for len(s) >= 5 && s[0] != 0 {
		modes[s[0]] = binary.BigEndian.Uint32([]byte(s[1:5]))
		s = s[5:]
	}
	return modes, s == "\x00"
}

// floodData returns n deterministic pseudo-random bytes.
func floodData(n int) []byte {
	b := make([]byte, n)
	mathrand.NewChaCha8([32]byte{'s', 's', 'h'}).Read(b)
	return b
}

// silentServer accepts TCP connections and never says anything: an SSH
// handshake against it hangs until the client gives up.
type silentServer struct {
	ln       net.Listener
	accepted chan struct{} // receives once per accepted connection
}

func newSilentServer(t *testing.T) *silentServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	s := &silentServer{ln: ln, accepted: make(chan struct{}, 16)}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			select {
			case s.accepted <- struct{}{}:
			default:
			}
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
		mu.Lock()
		cs := conns
		conns = nil
		mu.Unlock()
		for _, c := range cs {
			c.Close()
		}
	})
	return s
}

// Target returns a Target for the silent server.
func (s *silentServer) Target() sshbridge.Target {
	t := targetFor(s.ln.Addr(), "user")
	t.Password = "pw"
	return t
}

// stallDialer dials TCP and hands out stallConns.
type stallDialer struct {
	conns chan *stallConn // receives each dialled connection
}

func (d *stallDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	sc := &stallConn{Conn: c, blocked: make(chan struct{}, 1), release: make(chan struct{})}
	select {
	case d.conns <- sc:
	default:
	}
	return sc, nil
}

// stallConn simulates a network that stops carrying data: once stalled,
// Write blocks until the connection is closed, like a TCP send whose
// buffer never drains.
type stallConn struct {
	net.Conn
	stalled   atomic.Bool
	blocked   chan struct{} // receives when a Write starts to block
	release   chan struct{} // closed by Close
	closeOnce sync.Once
}

func (c *stallConn) Write(p []byte) (int, error) {
	if c.stalled.Load() {
		select {
		case c.blocked <- struct{}{}:
		default:
		}
		<-c.release
		return 0, net.ErrClosed
	}
	return c.Conn.Write(p)
}

func (c *stallConn) Close() error {
	c.closeOnce.Do(func() { close(c.release) })
	return c.Conn.Close()
}

// dialShell dials and fails the test on error; the session is closed at
// cleanup.
func dialShell(t *testing.T, cfg sshbridge.Config, target sshbridge.Target, size sshbridge.WindowSize) *sshbridge.Session {
	t.Helper()
	sess, err := sshbridge.Dial(t.Context(), cfg, target, size)
	if err != nil {
		t.Fatalf("Dial: got error %v, want nil", err)
	}
	t.Cleanup(func() { sess.Close() })
	return sess
}

type dialResult struct {
	sess *sshbridge.Session
	err  error
}

// dialAsync runs Dial in a goroutine so the test can bound how long it
// takes. At cleanup it cancels ctx, waits for Dial and closes a session
// that opened anyway.
func dialAsync(t *testing.T, ctx context.Context, cfg sshbridge.Config, target sshbridge.Target) <-chan dialResult {
	t.Helper()
	ch := make(chan dialResult, 1)
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		sess, err := sshbridge.Dial(ctx, cfg, target, sshbridge.DefaultWindowSize)
		ch <- dialResult{sess, err}
	})
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		select {
		case r := <-ch:
			if r.sess != nil {
				r.sess.Close()
			}
		default:
		}
	})
	return ch
}

// recv waits for a value on ch, failing the test after waitTimeout.
func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	select {
	case v := <-ch:
		return v
	case <-timer.C:
		t.Fatalf("timed out after %v waiting for %s", waitTimeout, what)
	}
	var zero T
	return zero
}

// output collects what a reader yields, read by its own goroutine so the
// test can wait for it with a deadline.
type output struct {
	chunks chan []byte // closed when the reader returns an error
	err    error       // the reader's error; valid once chunks is closed
	ended  bool
	got    bytes.Buffer
}

// readOutput starts reading r (Session or its Stderr) until it fails. At
// cleanup it closes sess, which ends the read, and waits for the reader.
func readOutput(t *testing.T, sess *sshbridge.Session, r io.Reader) *output {
	t.Helper()
	o := &output{chunks: make(chan []byte)}
	done := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		defer close(o.chunks)
		buf := make([]byte, 32<<10)
		for {
			n, err := r.Read(buf)
			if n > 0 {
				select {
				case o.chunks <- bytes.Clone(buf[:n]):
				case <-done:
					return
				}
			}
			if err != nil {
				o.err = err
				return
			}
		}
	}()
	t.Cleanup(func() {
		close(done)
		sess.Close()
		<-exited
	})
	return o
}

// waitFor reads until the output so far contains want and returns it.
func (o *output) waitFor(t *testing.T, want string) string {
	t.Helper()
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	for !strings.Contains(o.got.String(), want) {
		if o.ended {
			t.Fatalf("output ended (%v) before %q arrived; got %q", o.err, want, abbrev(o.got.String()))
		}
		select {
		case b, ok := <-o.chunks:
			if !ok {
				o.ended = true
				continue
			}
			o.got.Write(b)
		case <-timer.C:
			t.Fatalf("timed out after %v waiting for %q; got %q", waitTimeout, want, abbrev(o.got.String()))
		}
	}
	return o.got.String()
}

// waitEnd reads until the reader fails and returns all output and the
// reader's error.
func (o *output) waitEnd(t *testing.T) (string, error) {
	t.Helper()
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	for !o.ended {
		select {
		case b, ok := <-o.chunks:
			if !ok {
				o.ended = true
				continue
			}
			o.got.Write(b)
		case <-timer.C:
			t.Fatalf("timed out after %v waiting for the end of output; got %q", waitTimeout, abbrev(o.got.String()))
		}
	}
	return o.got.String(), o.err
}

// abbrev shortens long output in failure messages.
func abbrev(s string) string {
	const max = 200
	if len(s) <= max {
		return s
	}
	return fmt.Sprintf("%s…(%d bytes)…%s", s[:max/2], len(s)-max, s[len(s)-max/2:])
}
