package server

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/alfresco-ssh/alfresco-ssh/internal/sshdtest"
	"github.com/alfresco-ssh/alfresco-ssh/internal/waitfor"
)

// pageOutput is an ssh-output of a resumable session.
type pageOutput struct {
	Output  string `json:"output"`
	Seq     uint64 `json:"seq"`
	Timeout *bool  `json:"timeout"` // set on the closing message
}

// readAcking reads the socket as the stock page does: it answers pings
// and acknowledges every numbered ssh-output as it arrives. It sends the
// output on got, and the closing message (or a read error) on end, until
// ctx ends.
func (s *sshSocket) readAcking(ctx context.Context, got chan<- string, end chan<- string) {
	for {
		packets, err := s.c.recv()
		if err != nil {
			end <- "read: " + err.Error()
			return
		}
		for _, p := range packets {
			switch {
			case p == "2":
				go s.send("3") //nolint:errcheck // a closed connection is seen by recv
			case p == "41/ssh," || p == "41/ssh":
				end <- "disconnected"
				return
			case strings.HasPrefix(p, `42/ssh,["ssh-output",`):
				var o pageOutput
				if err := decodeEvent(p, &o); err != nil {
					end <- err.Error()
					return
				}
				if o.Timeout != nil {
					end <- o.Output
					return
				}
				select {
				case got <- o.Output:
				case <-ctx.Done():
					return
				}
				if o.Seq > 0 {
					// As the page's acks, these queue behind the input
					// already sent.
					go s.emit("ssh-ack", map[string]any{"seq": o.Seq}) //nolint:errcheck // seen by recv
				}
			}
		}
	}
}

// TestResumablePaste: a large paste into a remote that echoes it (cat),
// on a session whose page opted in to resume. The gateway pauses reading
// the client while the remote is behind on input, and the remote is
// behind because its output waits for the page's acknowledgements, which
// come on the same connection after the input: the pause must not hold
// those back, or the session stalls and ends as "not reading input".
func TestResumablePaste(t *testing.T) {
	sshd := sshdtest.Start(t)
	g := startGateway(t, Config{PingInterval: time.Second, PingTimeout: 6 * time.Second, ResumeWindow: time.Minute})
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	s := mustOpenSocket(t, ctx, g.url)
	if err := s.emit("start-session", map[string]any{"credentials_uuid": g.create(t, passwordLogin(sshd)), "resume": true}); err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1024)
	end := make(chan string, 1)
	go s.readAcking(ctx, got, end)
	// wait reads output until done says it is there.
	wait := func(what string, done func(string) bool) {
		t.Helper()
		for {
			select {
			case o := <-got:
				if done(o) {
					return
				}
			case e := <-end:
				t.Fatalf("waiting for %s: the session ended: %q", what, e)
			}
		}
	}
	var out strings.Builder
	shown := func(want string) func(string) bool {
		return func(o string) bool { out.WriteString(o); return strings.Contains(out.String(), want) }
	}
	wait("the prompt", shown("$ "))
	// Echo off: every x that comes back is cat's.
	if err := s.emit("ssh-input", map[string]any{"input": "stty -echo -icanon; echo READY-$((6*7)); cat\n"}); err != nil {
		t.Fatal(err)
	}
	wait("stty", shown("READY-42"))
	const piece, total = 64 << 10, 24 << 20
	msg := strings.Repeat("x", piece)
	sent := make(chan error, 1)
	go func() {
		for range total / piece {
			if err := s.emit("ssh-input", map[string]any{"input": msg}); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()
	n := 0
	wait(fmt.Sprintf("%d bytes of output", total), func(o string) bool { n += strings.Count(o, "x"); return n >= total })
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
}

// ready reads until connection-ready and returns its payload; the
// closing message is an error.
func (s *sshSocket) ready() (map[string]any, error) {
	for {
		packets, err := s.c.recv()
		if err != nil {
			return nil, err
		}
		for _, p := range packets {
			switch {
			case p == "2":
				go s.send("3") //nolint:errcheck // a closed connection is seen by recv
			case strings.HasPrefix(p, `42/ssh,["connection-ready",`):
				var m map[string]any
				return m, decodeEvent(p, &m)
			case strings.Contains(p, `"timeout":`):
				return nil, fmt.Errorf("closing message %s", p)
			}
		}
	}
}

// TestResumeAtLimit: a client at its session limit can take back the
// session it left detached (which holds the slot), but no more: one
// client per detached session is let in without a slot, to resume only.
func TestResumeAtLimit(t *testing.T) {
	sshd := sshdtest.Start(t)
	g := startGateway(t, Config{MaxSessionsPerClient: 1, ResumeWindow: time.Minute})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	const refusal = "too many sessions from your address"
	first := mustOpenSocket(t, ctx, g.url)
	if err := first.emit("start-session", map[string]any{"credentials_uuid": g.create(t, passwordLogin(sshd)), "resume": true}); err != nil {
		t.Fatal(err)
	}
	r, err := first.ready()
	if err != nil {
		t.Fatal(err)
	}
	first.c.close()
	waitfor.Cond(t, "the session detached", func() bool { return strings.Contains(g.logs.String(), `msg="terminal detached"`) })

	// One socket is let in; it cannot start a session of its own.
	starter := mustOpenSocket(t, ctx, g.url)
	g.waitLetIn(t, 2)
	extra := mustOpenSocket(t, ctx, g.url)
	if out, err := extra.closing(); err != nil || !strings.Contains(out, refusal) {
		t.Errorf("a second socket while one is let in to resume: got %q, %v; want the refusal", out, err)
	}
	if err := starter.emit("start-session", map[string]any{"credentials_uuid": g.create(t, passwordLogin(sshd))}); err != nil {
		t.Fatal(err)
	}
	if out, err := starter.closing(); err != nil || !strings.Contains(out, refusal) {
		t.Errorf("start-session from a socket let in to resume: got %q, %v; want the refusal", out, err)
	}

	resumer := mustOpenSocket(t, ctx, g.url)
	if err := resumer.emit("resume-session", map[string]any{"resume_token": r["resume_token"], "seq": 0}); err != nil {
		t.Fatal(err)
	}
	if r, err := resumer.ready(); err != nil || r["resumed"] != true {
		t.Fatalf("resume at the limit: got %v, %v; want connection-ready with resumed", r, err)
	}
	// The resumed session holds the slot again.
	after := mustOpenSocket(t, ctx, g.url)
	if out, err := after.closing(); err != nil || !strings.Contains(out, refusal) {
		t.Errorf("a socket beside the resumed session: got %q, %v; want the refusal", out, err)
	}
}
