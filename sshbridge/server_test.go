package sshbridge_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alfresco-ssh/alfresco-ssh/internal/lightssh"
	"github.com/alfresco-ssh/alfresco-ssh/sshbridge"
)

// waitTimeout bounds every wait for an event in these tests. It is a
// deadline for a failure, not a delay: passing tests never reach it.
const waitTimeout = 10 * time.Second

// serverOptions configures a testServer (PTYEvents is set by newTestServer).
type serverOptions = lightssh.Options

// ptyEvent is a "pty-req" or "window-change" request as the server saw it.
type ptyEvent = lightssh.PTYEvent

// testServer is an in-process SSH server on 127.0.0.1 (internal/lightssh).
// It stops when the test ends: Cleanup closes the listener and every
// connection and waits for all its goroutines.
type testServer struct {
	*lightssh.Server
	// events receives pty-req and window-change requests in arrival order.
	events chan ptyEvent
}

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
	events := make(chan ptyEvent, 16)
	opts.PTYEvents = events
	srv, err := lightssh.Listen("127.0.0.1:0", opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return &testServer{Server: srv, events: events}
}

// Target returns a Target for this server with the configured user.
func (s *testServer) Target() sshbridge.Target {
	return targetFor(s.Addr(), s.User())
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
