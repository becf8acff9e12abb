package server

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alfresco-ssh/alfresco-ssh/internal/sshdtest"
	"github.com/alfresco-ssh/alfresco-ssh/sshbridge"
	"github.com/alfresco-ssh/alfresco-ssh/terminal"
)

// Lifecycle paths of a socket seen from a bare Engine.IO client: limits
// and deadlines before start-session, malformed start-session, shutdown.

// sshSocket is a socket on /ssh over a bare websocket engine client.
type sshSocket struct {
	c engineClient
}

// openSocket connects to /ssh and waits for the CONNECT reply.
func openSocket(ctx context.Context, base string) (*sshSocket, error) {
	c, err := dialWS(ctx, base)
	if err != nil {
		return nil, err
	}
	s := &sshSocket{c}
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
	return s.c.send("42/ssh," + string(b))
}

// closing reads until the DISCONNECT of /ssh and returns the output
// received, closing message included.
func (s *sshSocket) closing() (string, error) {
	var out strings.Builder
	for {
		packets, err := s.c.recv()
		if err != nil {
			return out.String(), fmt.Errorf("no DISCONNECT: %w", err)
		}
		for _, p := range packets {
			switch {
			case p == "2":
				if err := s.c.send("3"); err != nil {
					return out.String(), err
				}
			case strings.HasPrefix(p, `42/ssh,["ssh-output",`):
				var ev []json.RawMessage
				var m struct {
					Output string `json:"output"`
				}
				if err := json.Unmarshal([]byte(p[len("42/ssh,"):]), &ev); err != nil || len(ev) != 2 {
					return out.String(), fmt.Errorf("ssh-output %q: %v", p, err)
				}
				if err := json.Unmarshal(ev[1], &m); err != nil {
					return out.String(), fmt.Errorf("ssh-output %q: %v", p, err)
				}
				out.WriteString(m.Output)
			case p == "41/ssh," || p == "41/ssh":
				return out.String(), nil
			}
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
	first, err := openSocket(ctx, g.url)
	if err != nil {
		t.Fatal(err)
	}
	defer first.c.close()
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
	waitFor(t, "no terminal left", func() bool { return len(g.srv.Terminals().List()) == 0 })
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
		packets, err := s.c.recv()
		if err != nil {
			return fmt.Errorf("waiting for %q, got %q: %w", want, out.String(), err)
		}
		for _, p := range packets {
			switch {
			case p == "2":
				if err := s.c.send("3"); err != nil {
					return err
				}
			case strings.HasPrefix(p, `42/ssh,["ssh-output",`):
				var ev []json.RawMessage
				var m struct {
					Output string `json:"output"`
				}
				if json.Unmarshal([]byte(p[len("42/ssh,"):]), &ev) == nil && len(ev) == 2 && json.Unmarshal(ev[1], &m) == nil {
					out.WriteString(m.Output)
				}
			}
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
	g := startGateway(t, Config{})
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	s, err := openSocket(ctx, g.url)
	if err != nil {
		t.Fatal(err)
	}
	defer s.c.close()
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
	msg := strings.Repeat("x", 1<<20)
	var peak uint64
	for i := range 64 {
		if err := s.emit("ssh-input", map[string]any{"input": msg}); err != nil {
			t.Logf("message %d: %v (the gateway closed the socket)", i, err)
			break
		}
		if i%8 == 7 {
			peak = max(peak, liveHeap())
		}
	}
	out, err := s.closing()
	if err != nil || !strings.Contains(out, "Session closed: the remote is not reading input.") {
		t.Errorf("closing: got %q, %v; want the red message", out, err)
	}
	after := liveHeap()
	const mib = 1 << 20
	t.Logf("probe 1: live heap %.1f MiB before, at most %.1f MiB while 64 x 1 MiB arrived, %.1f MiB after the end",
		float64(before)/mib, float64(peak)/mib, float64(after)/mib)
	if limit := before + 3*terminal.InputBuffer + 16*mib; peak > limit {
		t.Errorf("live heap while input waited: got %d MiB, want at most %d MiB", peak/mib, limit/mib)
	}
}
