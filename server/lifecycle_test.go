package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/alfresco-ssh/alfresco-ssh/credstore"
	"github.com/alfresco-ssh/alfresco-ssh/internal/sshdtest"
	"github.com/alfresco-ssh/alfresco-ssh/internal/syncbuf"
	"github.com/alfresco-ssh/alfresco-ssh/internal/waitfor"
	"github.com/alfresco-ssh/alfresco-ssh/sshbridge"
	"github.com/alfresco-ssh/alfresco-ssh/terminal"
)

// Lifecycle paths of a socket seen from a bare Engine.IO client: limits
// and deadlines before start-session, malformed start-session, shutdown.

// sshSocket is a socket on /ssh over a bare websocket engine client.
type sshSocket struct {
	c  engineClient
	mu sync.Mutex // one writer at a time
}

// send sends packets; it is safe to call while another goroutine reads.
func (s *sshSocket) send(packets ...string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.c.send(packets...)
}

// mustOpenSocket is openSocket on the test's goroutine: a failure ends
// the test, and the socket is closed at its end.
func mustOpenSocket(t *testing.T, ctx context.Context, base string) *sshSocket {
	t.Helper()
	s, err := openSocket(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.c.close)
	return s
}

// openSocket connects to /ssh and waits for the CONNECT reply.
func openSocket(ctx context.Context, base string) (*sshSocket, error) {
	c, err := dialWS(ctx, base)
	if err != nil {
		return nil, err
	}
	s := &sshSocket{c: c}
	if err := c.send("40/ssh,"); err != nil {
		c.close()
		return nil, err
	}
	for {
		packets, err := c.recv()
		if err != nil {
			c.close()
			return nil, err
		}
		for _, p := range packets {
			if strings.HasPrefix(p, "40/ssh,") {
				return s, nil
			}
		}
	}
}

// emit sends an event with a JSON payload.
func (s *sshSocket) emit(event string, payload any) error {
	b, err := json.Marshal([]any{event, payload})
	if err != nil {
		return err
	}
	return s.send("42/ssh," + string(b))
}

// next reads the next packets: the output of ssh-output events, and
// whether /ssh was disconnected. It answers pings.
func (s *sshSocket) next() (output string, disconnected bool, err error) {
	packets, err := s.c.recv()
	if err != nil {
		return "", false, err
	}
	var out strings.Builder
	for _, p := range packets {
		switch {
		case p == "2":
			// Not on this goroutine: while the gateway reads nothing from
			// this client, a write waits, and the reading must go on.
			go s.send("3") //nolint:errcheck // a closed connection is seen by recv

		case strings.HasPrefix(p, `42/ssh,["ssh-output",`):
			var m struct {
				Output string `json:"output"`
			}
			if err := decodeEvent(p, &m); err != nil {
				return out.String(), false, err
			}
			out.WriteString(m.Output)
		case p == "41/ssh," || p == "41/ssh":
			return out.String(), true, nil
		}
	}
	return out.String(), false, nil
}

// decodeEvent decodes the payload of an event packet on /ssh into v.
func decodeEvent(p string, v any) error {
	var ev []json.RawMessage
	if err := json.Unmarshal([]byte(strings.TrimPrefix(p, "42/ssh,")), &ev); err != nil || len(ev) != 2 {
		return fmt.Errorf("event %q: %v", p, err)
	}
	if err := json.Unmarshal(ev[1], v); err != nil {
		return fmt.Errorf("event %q: %v", p, err)
	}
	return nil
}

// closing reads until the DISCONNECT of /ssh and returns the output
// received, closing message included.
func (s *sshSocket) closing() (string, error) {
	var out strings.Builder
	for {
		o, disconnected, err := s.next()
		out.WriteString(o)
		if err != nil {
			return out.String(), fmt.Errorf("no DISCONNECT: %w", err)
		}
		if disconnected {
			return out.String(), nil
		}
	}
}

// TestSocketLimits: sockets count against the session limits from their
// connection, before any start-session; those over the limit are closed
// with the red message at once, and a socket that never starts a session
// is closed once the start deadline (the SSH timeout plus startGrace) has
// passed. This is the review's probe 2: 20 unstarted sockets against
// --max-sessions-per-client 1.
func TestSocketLimits(t *testing.T) {
	g := startGateway(t, Config{MaxSessionsPerClient: 1, SSH: sshbridge.Config{Timeout: time.Second}})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	first := mustOpenSocket(t, ctx, g.url)
	g.waitLetIn(t, 1)
	const n = 19
	var wg sync.WaitGroup
	var mu sync.Mutex
	refused := 0
	for range n {
		wg.Go(func() {
			s, err := openSocket(ctx, g.url)
			if err != nil {
				t.Errorf("socket: %v", err)
				return
			}
			defer s.c.close()
			out, err := s.closing()
			if err != nil || !strings.Contains(out, "too many sessions from your address") {
				t.Errorf("socket over the limit: got %q, %v; want the red refusal and a disconnect", out, err)
				return
			}
			mu.Lock()
			refused++
			mu.Unlock()
		})
	}
	wg.Wait()
	start := time.Now()
	out, err := first.closing()
	if err != nil || !strings.Contains(out, "the session did not start in time") {
		t.Errorf("unstarted socket: got %q, %v; want the start deadline's red message", out, err)
	}
	t.Logf("probe 2: 20 unstarted sockets, --max-sessions-per-client 1: %d refused at once, 1 held until the start deadline (closed %v after the others)",
		refused, time.Since(start).Round(100*time.Millisecond))
	waitfor.Cond(t, "no terminal left", func() bool { return len(g.srv.Terminals().List()) == 0 })
}

// TestInvalidStartSession: a malformed start-session gets the red closing
// message and a disconnect, never silence.
func TestInvalidStartSession(t *testing.T) {
	g := startGateway(t, Config{})
	for _, payload := range []any{
		map[string]any{"credentials_uuid": 7},
		[]int{1, 2},
		map[string]any{},
		"id",
		map[string]any{"credentials_uuid": strings.Repeat("x", 65)},
	} {
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		s, err := openSocket(ctx, g.url)
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		err = s.emit("start-session", payload)
		out, cerr := s.closing()
		s.c.close()
		cancel()
		if err != nil || cerr != nil || !strings.Contains(out, "\x1b[91mCould not start the session: the credentials are unknown") {
			t.Errorf("start-session %v: got %q, %v, %v; want the red closing message", payload, out, err, cerr)
		}
	}
}

// waitOutput reads until the output received contains want.
func (s *sshSocket) waitOutput(want string) error {
	var out strings.Builder
	for !strings.Contains(out.String(), want) {
		o, disconnected, err := s.next()
		out.WriteString(o)
		if err == nil && disconnected {
			err = errors.New("disconnected")
		}
		if err != nil {
			return fmt.Errorf("waiting for %q, got %q: %w", want, out.String(), err)
		}
	}
	return nil
}

// liveHeap is the heap in use after a collection.
func liveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestInputMemory is the review's probe 1: 64 messages of 1 MiB into a
// remote that does not read (a real sshd, "stty -icanon; sleep 600").
// Input waits in a bounded buffer; the session ends with the red message
// once it is full, and the gateway's live heap stays bounded.
func TestInputMemory(t *testing.T) {
	sshd := sshdtest.Start(t)
	// The input stall ends the session after PingTimeout/2.
	g := startGateway(t, Config{PingInterval: time.Second, PingTimeout: 6 * time.Second})
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	s := mustOpenSocket(t, ctx, g.url)
	if err := s.emit("start-session", map[string]any{"credentials_uuid": g.create(t, passwordLogin(sshd))}); err != nil {
		t.Fatal(err)
	}
	if err := s.waitOutput("$ "); err != nil {
		t.Fatal(err)
	}
	if err := s.emit("ssh-input", map[string]any{"input": "stty -icanon; echo READ-$((6*7)); sleep 600\n"}); err != nil {
		t.Fatal(err)
	}
	if err := s.waitOutput("READ-42"); err != nil {
		t.Fatal(err)
	}
	before := liveHeap()
	// The client reads while it sends, as a page does (the tty echoes the
	// input back).
	type closed struct {
		out string
		err error
	}
	end := make(chan closed, 1)
	go func() {
		out, err := s.closing()
		end <- closed{out, err}
	}()
	msg := strings.Repeat("x", 1<<20)
	var peak uint64
	sent := 0
	for range 64 {
		if err := s.emit("ssh-input", map[string]any{"input": msg}); err != nil {
			break // the gateway ended the session
		}
		sent++
		peak = max(peak, liveHeap())
	}
	c := <-end
	if c.err != nil || !strings.Contains(c.out, "Session closed: the remote is not reading input.") {
		t.Errorf("closing: got %q, %v; want the red message", c.out[max(0, len(c.out)-200):], c.err)
	}
	after := liveHeap()
	const mib = 1 << 20
	t.Logf("probe 1: live heap %.1f MiB before, at most %.1f MiB while the client sent %d of 64 x 1 MiB, %.1f MiB after the end",
		float64(before)/mib, float64(peak)/mib, sent, float64(after)/mib)
	if limit := before + 3*terminal.InputBuffer + 16*mib; peak > limit {
		t.Errorf("live heap while input waited: got %d MiB, want at most %d MiB", peak/mib, limit/mib)
	}
}

// serveUntilShutdown serves srv on a loopback port; the test calls
// Shutdown. It returns the base URL and Serve's result.
func serveUntilShutdown(t *testing.T, srv *Server) (string, <-chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), served
}

// TestShutdownOrder: once Shutdown has begun, the create endpoints answer
// 503 and the store takes nothing more; a live session's connection ends
// (with ctx already over it may be cut before it is told why, which
// TestShutdownTellsClients checks with time to spare); new sockets racing
// the shutdown are answered (the red message or a refused handshake),
// never left hanging; and when ctx ends first, Shutdown still closes
// everything and returns ctx's error.
func TestShutdownOrder(t *testing.T) {
	sshd := sshdtest.Start(t)
	logs := &syncbuf.Buffer{}
	srv := newTestServer(t, Config{Logger: slog.New(slog.NewTextHandler(logs, nil)), SSH: sshbridge.Config{Timeout: 10 * time.Second}})
	base, served := serveUntilShutdown(t, srv)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	live := mustOpenSocket(t, ctx, base)
	g := &gateway{srv: srv, url: base, logs: logs}
	if err := live.emit("start-session", map[string]any{"credentials_uuid": g.create(t, passwordLogin(sshd))}); err != nil {
		t.Fatal(err)
	}
	if err := live.waitOutput("$ "); err != nil {
		t.Fatal(err)
	}

	// Sockets that connect while the gateway shuts down.
	var wg sync.WaitGroup
	racing := make(chan struct{})
	var answered, refused atomic.Int32
	for range 10 {
		wg.Go(func() {
			<-racing
			s, err := openSocket(ctx, base)
			if err != nil {
				refused.Add(1) // the handshake was refused or the connection closed
				return
			}
			defer s.c.close()
			if out, err := s.closing(); err == nil && strings.Contains(out, "shutting down") {
				answered.Add(1)
			} else if err != nil && ctx.Err() != nil {
				t.Errorf("racing socket: no answer before the test's deadline (%q)", out)
			} else {
				refused.Add(1) // cut off with the server
			}
		})
	}
	expired, stop := context.WithCancel(t.Context())
	stop() // the deadline path: ctx has ended before Shutdown starts
	close(racing)
	shutdownErr := srv.Shutdown(expired)
	wg.Wait()
	if !errors.Is(shutdownErr, context.Canceled) {
		t.Errorf("Shutdown with an ended context: got %v, want context.Canceled", shutdownErr)
	}
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("Serve: got %v, want nil after Shutdown", err)
		}
	case <-ctx.Done():
		t.Fatal("Serve still running after Shutdown")
	}
	// With no time left, the live session may be cut before its message
	// is out; either way its connection ends, long before the read
	// deadline (ctx's).
	out, err := live.closing()
	t.Logf("live session at an ended deadline: got %q, %v", out, err)
	if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
		t.Errorf("live session: got a read timeout (%v), want its connection ended by Shutdown", err)
	}
	t.Logf("sockets racing the shutdown: %d told it shuts down, %d refused or cut off", answered.Load(), refused.Load())

	req := httptest.NewRequest(http.MethodPost, "/create-credentials", strings.NewReader(`{"hostname":"192.0.2.1","username":"u","password":"p"}`))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "shutting down") {
		t.Errorf("create after Shutdown: got %d %s, want 503 shutting down", rec.Code, rec.Body)
	}
	if _, err := srv.store.Put(t.Context(), sshbridge.Target{Host: "192.0.2.1", Port: 22, User: "u", Password: "p"}); !errors.Is(err, credstore.ErrClosed) {
		t.Errorf("Put after Shutdown: got %v, want credstore.ErrClosed", err)
	}
	waitfor.Cond(t, "no terminal left", func() bool { return len(srv.Terminals().List()) == 0 })
}

// exhaustedListener fails its first Accepts as a process without a free
// file descriptor does.
type exhaustedListener struct {
	net.Listener
	failures atomic.Int32
}

func (l *exhaustedListener) Accept() (net.Conn, error) {
	if l.failures.Add(-1) >= 0 {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

// TestAcceptAtCapacity: accepting without a free file descriptor is
// logged once per interval, not once per attempt, and serving goes on
// once descriptors are free again.
func TestAcceptAtCapacity(t *testing.T) {
	logs := &syncbuf.Buffer{}
	srv := newTestServer(t, Config{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	el := &exhaustedListener{Listener: ln}
	el.failures.Store(5)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(el) }()
	res, err := http.Get("http://" + ln.Addr().String() + "/livez")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if err := srv.Shutdown(t.Context()); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if err := <-served; err != nil {
		t.Errorf("Serve: %v", err)
	}
	if n := strings.Count(logs.String(), "out of file descriptors"); n != 1 {
		t.Errorf("5 failed accepts: got %d log lines about file descriptors, want 1; log:\n%s", n, logs)
	}
}

// TestDisconnectBeforeStart: a socket that leaves before start-session
// ends its terminal and frees its slot in the session limits.
func TestDisconnectBeforeStart(t *testing.T) {
	g := startGateway(t, Config{MaxSessionsPerClient: 1})
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	for i := range 3 {
		s, err := openSocket(ctx, g.url)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.emit("resize", map[string]int{"cols": 100, "rows": 30}); err != nil {
			t.Fatal(err)
		}
		waitfor.Cond(t, "the socket's terminal", func() bool { return len(g.srv.Terminals().List()) == 1 })
		if i%2 == 0 {
			s.c.send("41/ssh,") // a namespace DISCONNECT
		}
		s.c.close()
		waitfor.Cond(t, "the terminal to end", func() bool { return len(g.srv.Terminals().List()) == 0 })
	}
}
