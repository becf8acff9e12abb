package terminal_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/crypto/ssh"

	"github.com/alfresco-ssh/alfresco-ssh/internal/lightssh"
	"github.com/alfresco-ssh/alfresco-ssh/policy"
	"github.com/alfresco-ssh/alfresco-ssh/sshbridge"
	"github.com/alfresco-ssh/alfresco-ssh/terminal"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// waitTimeout bounds every wait for an event; it is never reached when
// the code works.
const waitTimeout = 20 * time.Second

// The framing the tests give the Manager, as server gives Socket.IO's.
const (
	head       = "HEAD"
	binaryHead = "BINARY"
	tail       = "TAIL"
)

// message is an ssh-output payload as a client reads it.
type message struct {
	Output  string `json:"output"`
	Timeout *bool  `json:"timeout"`
	Seq     uint64 `json:"seq"` // resume.go
	Binary  bool   `json:"-"`   // it came as OutputBinary's data
}

// client is a terminal.Client that records what it is sent. Unless hold
// is set, it calls written at once, as a transport that keeps up would;
// with hold, the test calls it, and a packet sent before is an error.
type client struct {
	t    *testing.T
	hold bool

	mu       sync.Mutex
	messages []message
	held     []func()
	ready    []terminal.Ready
	closed   bool
	changed  chan struct{} // closed and replaced on every change
}

func newClient(t *testing.T) *client {
	return &client{t: t, changed: make(chan struct{})}
}

func (c *client) Output(packet []byte, written func()) {
	var m message
	if c.decode(packet, head, &m) {
		c.record(m, written)
	}
}

// OutputBinary records data as the output; the header must hold the
// attachment's placeholder.
func (c *client) OutputBinary(packet, data []byte, written func()) {
	var m struct {
		message
		Output struct {
			Placeholder bool `json:"_placeholder"`
			Num         *int `json:"num"`
		} `json:"output"`
	}
	if c.decode(packet, binaryHead, &m) {
		if !m.Output.Placeholder || m.Output.Num == nil || *m.Output.Num != 0 {
			c.t.Errorf("binary header %q: no placeholder of attachment 0", packet)
		}
		m.message.Output, m.Binary = string(data), true
		c.record(m.message, written)
		terminal.Recycle(data) // as the server does: the terminal must not reuse it
	}
}

// decode parses a packet framed by head and tail into m.
func (c *client) decode(packet []byte, head string, m any) bool {
	s := string(packet)
	if !strings.HasPrefix(s, head) || !strings.HasSuffix(s, tail) {
		c.t.Errorf("packet %q: not framed by %q and %q", s, head, tail)
		return false
	}
	if err := json.Unmarshal([]byte(s[len(head):len(s)-len(tail)]), m); err != nil {
		c.t.Errorf("packet %q: %v", s, err)
		return false
	}
	return true
}

func (c *client) record(m message, written func()) {
	c.update(func() {
		c.messages = append(c.messages, m)
		if written != nil && c.hold {
			if len(c.held) > 0 {
				c.t.Errorf("output packet %q sent while the previous one is unwritten", m.Output)
			}
			c.held = append(c.held, written)
			written = nil
		}
	})
	if written != nil {
		written()
	}
}

func (c *client) Ready(r terminal.Ready) { c.update(func() { c.ready = append(c.ready, r) }) }
func (c *client) Close()                 { c.update(func() { c.closed = true }) }

func (c *client) update(f func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f()
	close(c.changed)
	c.changed = make(chan struct{})
}

// waitFor waits until cond, called under the lock, holds.
func (c *client) waitFor(what string, cond func() bool) {
	c.t.Helper()
	deadline := time.After(waitTimeout)
	for {
		c.mu.Lock()
		ok, changed := cond(), c.changed
		c.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			out := c.output()
			c.t.Fatalf("timed out waiting for %s; output (%d bytes) ends %q", what, len(out), out[max(0, len(out)-200):])
		}
	}
}

// output is all output received, closing message included.
func (c *client) output() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b strings.Builder
	for _, m := range c.messages {
		b.WriteString(m.Output)
	}
	return b.String()
}

func (c *client) waitOutput(want string) {
	c.t.Helper()
	c.waitFor("output "+want, func() bool { return strings.Contains(c.outputLocked(), want) })
}

func (c *client) outputLocked() string {
	var b strings.Builder
	for _, m := range c.messages {
		b.WriteString(m.Output)
	}
	return b.String()
}

func (c *client) waitReady() terminal.Ready {
	c.t.Helper()
	c.waitFor("connection-ready", func() bool { return len(c.ready) > 0 })
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ready[0]
}

// closing waits for the client to be closed and returns the closing
// message: the last one, which has a timeout field.
func (c *client) closing() message {
	c.t.Helper()
	c.waitFor("the client to be closed", func() bool { return c.closed })
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.messages) == 0 || c.messages[len(c.messages)-1].Timeout == nil {
		c.t.Fatalf("closed without a closing message; got %+v", c.messages)
	}
	return c.messages[len(c.messages)-1]
}

// credentials is a terminal.Credentials over a map.
type credentials struct {
	mu      sync.Mutex
	targets map[string]sshbridge.Target
}

func (c *credentials) Take(_ context.Context, id string) (sshbridge.Target, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.targets[id]
	if !ok {
		return t, errors.New("unknown")
	}
	delete(c.targets, id)
	return t, nil
}

func (c *credentials) put(id string, t sshbridge.Target) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.targets[id] = t
}

// observer records the calls of a terminal.Observer.
type observer struct {
	mu    sync.Mutex
	calls []string // "started", "failed", "ended", each with the Info
	infos []terminal.Info
}

func (o *observer) record(call string, info terminal.Info) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.calls = append(o.calls, call)
	o.infos = append(o.infos, info)
}

func (o *observer) Started(i terminal.Info) { o.record("started", i) }
func (o *observer) Failed(i terminal.Info)  { o.record("failed", i) }
func (o *observer) Ended(i terminal.Info)   { o.record("ended", i) }

func (o *observer) get() ([]string, []terminal.Info) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.calls...), append([]terminal.Info(nil), o.infos...)
}

// fixture is a Manager in front of an in-process SSH server.
type fixture struct {
	m     *terminal.Manager
	srv   *lightssh.Server
	creds *credentials
	obs   *observer
	pty   chan lightssh.PTYEvent
}

const password = "pw"

// newFixture starts an SSH server and a Manager; change adjusts the
// Manager's Config. At cleanup the Manager shuts down and the server
// stops.
func newFixture(t *testing.T, change func(*terminal.Config)) *fixture {
	t.Helper()
	f := &fixture{
		creds: &credentials{targets: map[string]sshbridge.Target{}},
		obs:   &observer{},
		pty:   make(chan lightssh.PTYEvent, 64),
	}
	srv, err := lightssh.Listen("127.0.0.1:0", lightssh.Options{User: "u", Password: password, PTYEvents: f.pty})
	if err != nil {
		t.Fatal(err)
	}
	f.srv = srv
	cfg := terminal.Config{
		SSH:         sshbridge.Config{Term: "xterm", Timeout: waitTimeout},
		Credentials: f.creds,
		OutputHead:  head,
		BinaryHead:  binaryHead,
		OutputTail:  tail,
		Observers:   []terminal.Observer{f.obs},
	}
	if change != nil {
		change(&cfg)
	}
	f.m = terminal.NewManager(cfg)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := f.m.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		srv.Close()
	})
	return f
}

// target returns a target that logs in to the fixture's server.
func (f *fixture) target() sshbridge.Target {
	a := f.srv.Addr()
	return sshbridge.Target{Host: a.IP.String(), Port: a.Port, User: "u", Password: password}
}

// startEnds opens a terminal for a client from ip, starts it with the
// credentials id, and checks that it ends with a closing message that
// contains want.
func (f *fixture) startEnds(t *testing.T, ip, id, want string) {
	t.Helper()
	c := newClient(t)
	term := f.m.Open(c, ip, nil)
	term.Start(id)
	if m := c.closing(); !strings.Contains(m.Output, want) {
		t.Errorf("closing message: got %q, want %q", m.Output, want)
	}
	waitDone(t, term)
}

// credentialsID stores the target and returns its id.
func (f *fixture) credentialsID(t sshbridge.Target) string {
	id := "id-" + strings.ReplaceAll(time.Now().Format(time.RFC3339Nano), ":", "")
	f.creds.put(id, t)
	return id
}

// start opens a terminal and starts a shell in it.
func (f *fixture) start(t *testing.T) (*terminal.Terminal, *client) {
	t.Helper()
	c := newClient(t)
	term := f.m.Open(c, "192.0.2.1", nil)
	term.Start(f.credentialsID(f.target()))
	f.nextPTY(t)
	c.waitReady()
	return term, c
}

func (f *fixture) nextPTY(t *testing.T) lightssh.PTYEvent {
	t.Helper()
	select {
	case e := <-f.pty:
		return e
	case <-time.After(waitTimeout):
		t.Fatal("timed out waiting for a PTY request at the server")
	}
	return lightssh.PTYEvent{}
}

func waitDone(t *testing.T, term *terminal.Terminal) {
	t.Helper()
	select {
	case <-term.Done():
	case <-time.After(waitTimeout):
		t.Fatalf("terminal not done; state %v", term.State())
	}
}

// TestLifecycle runs a terminal from connection to the shell's exit: the
// size given before start-session opens the PTY, input and output flow,
// the exit ends it with "Connection closed.", and the observers see it.
func TestLifecycle(t *testing.T) {
	f := newFixture(t, nil)
	c := newClient(t)
	term := f.m.Open(c, "192.0.2.1", nil)
	if got := term.State(); got != terminal.Waiting {
		t.Errorf("state after Open: got %v, want %v", got, terminal.Waiting)
	}
	term.Resize(sshbridge.WindowSize{Rows: 30, Cols: 100})
	term.Start(f.credentialsID(f.target()))
	if e := f.nextPTY(t); e.Kind != "pty-req" || e.Rows != 30 || e.Cols != 100 {
		t.Errorf("PTY request: got %+v, want a pty-req of 30 rows, 100 columns", e)
	}
	c.waitReady()
	if got := term.State(); got != terminal.Running {
		t.Errorf("state after connection-ready: got %v, want %v", got, terminal.Running)
	}
	term.Input("size\r")
	c.waitOutput("30 100\r\n")
	term.Input("exit\r")
	m := c.closing()
	if want := "\r\n\x1b[91mConnection closed.\x1b[0m\r\n"; m.Output != want || *m.Timeout {
		t.Errorf("closing message: got %q timeout %v, want %q timeout false", m.Output, *m.Timeout, want)
	}
	waitDone(t, term)
	if got := term.State(); got != terminal.Ended {
		t.Errorf("state at the end: got %v, want %v", got, terminal.Ended)
	}
	if _, ok := f.m.Get(term.ID()); ok {
		t.Errorf("Get after the end: found the terminal, want it forgotten")
	}

	calls, infos := f.obs.get()
	if strings.Join(calls, ",") != "started,ended" {
		t.Fatalf("observer calls: got %v, want started, ended", calls)
	}
	end := infos[1]
	wantKey := ssh.FingerprintSHA256(f.srv.HostKey())
	if end.ID != term.ID() || end.Client != "192.0.2.1" || end.Target != f.target().Addr() || end.User != "u" ||
		end.Auth != "password" || end.HostKey != wantKey || end.Started.IsZero() || end.Reason != terminal.ReasonExit {
		t.Errorf("Ended info: got %+v, want id %s, client 192.0.2.1, target %s, user u, auth password, host key %s, a start time, reason exit",
			end, term.ID(), f.target().Addr(), wantKey)
	}
	if end.BytesIn != uint64(len("size\rexit\r")) || end.BytesOut == 0 {
		t.Errorf("bytes in/out: got %d/%d, want %d and some", end.BytesIn, end.BytesOut, len("size\rexit\r"))
	}
}

// TestEndings: each way of ending gives its closing message (none for a
// client that left) and its reason.
func TestEndings(t *testing.T) {
	tests := []struct {
		name    string
		end     func(f *fixture, term *terminal.Terminal)
		want    string // closing text; "" for none
		timeout bool
		reason  terminal.Reason
	}{
		{"client gone", func(_ *fixture, term *terminal.Terminal) { term.Stop(terminal.ErrClientGone) }, "", false, terminal.ReasonClientGone},
		{"page timeout", func(_ *fixture, term *terminal.Terminal) { term.Stop(terminal.ErrInactive) }, "Session closed after a period of inactivity.", true, terminal.ReasonIdle},
		{"kill", func(f *fixture, term *terminal.Terminal) { f.m.Kill(term.ID()) }, "Session ended by an administrator.", false, terminal.ReasonKilled},
		{"shutdown", func(f *fixture, _ *terminal.Terminal) { f.m.Shutdown(context.Background()) }, "The gateway is shutting down. Connection closed.", false, terminal.ReasonShutdown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, nil)
			term, c := f.start(t)
			tt.end(f, term)
			waitDone(t, term)
			if tt.want == "" {
				c.mu.Lock()
				closed, n := c.closed, len(c.messages)
				c.mu.Unlock()
				if closed || n != 0 {
					t.Errorf("client gone: got %d messages, closed %v; want none, not closed", n, closed)
				}
			} else if m := c.closing(); !strings.Contains(m.Output, tt.want) || *m.Timeout != tt.timeout {
				t.Errorf("closing message: got %q timeout %v, want %q timeout %v", m.Output, *m.Timeout, tt.want, tt.timeout)
			}
			calls, infos := f.obs.get()
			if len(calls) != 2 || calls[1] != "ended" || infos[1].Reason != tt.reason {
				t.Errorf("observer: got %v %+v, want ended with reason %s", calls, infos, tt.reason)
			}
		})
	}
}

// TestIdleTimeout: no input and no output for the idle timeout ends the
// terminal as the page's own timeout does.
func TestIdleTimeout(t *testing.T) {
	f := newFixture(t, func(c *terminal.Config) { c.IdleTimeout = 200 * time.Millisecond })
	term, c := f.start(t)
	if m := c.closing(); !strings.Contains(m.Output, "inactivity") || !*m.Timeout {
		t.Errorf("closing message: got %q timeout %v, want inactivity, timeout true", m.Output, *m.Timeout)
	}
	waitDone(t, term)
}

// TestStartFailures: start-session that gets no shell ends with its
// closing message, and the observers see a failure with its reason.
func TestStartFailures(t *testing.T) {
	t.Run("unknown credentials", func(t *testing.T) {
		f := newFixture(t, nil)
		f.startEnds(t, "192.0.2.1", "no-such-id", "credentials are unknown, expired or already used")
		if calls, infos := f.obs.get(); len(calls) != 1 || calls[0] != "failed" || infos[0].Reason != terminal.ReasonInvalidCredentials {
			t.Errorf("observer: got %v %+v, want failed, invalid_credentials", calls, infos)
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		f := newFixture(t, nil)
		target := f.target()
		target.Password = "wrong"
		f.startEnds(t, "192.0.2.1", f.credentialsID(target), "authentication failed")
		calls, infos := f.obs.get()
		if len(calls) != 1 || calls[0] != "failed" || infos[0].Reason != terminal.ReasonAuthFailed ||
			infos[0].Target != target.Addr() || infos[0].User != "u" {
			t.Errorf("observer: got %v %+v, want failed, auth_failed, with target and user", calls, infos)
		}
	})
}

// TestStopBeforeStart: a client that leaves before start-session, or
// times out, ends a Waiting terminal at once.
func TestStopBeforeStart(t *testing.T) {
	f := newFixture(t, nil)
	gone := newClient(t)
	term := f.m.Open(gone, "192.0.2.1", nil)
	term.Stop(terminal.ErrClientGone)
	waitDone(t, term)
	term.Start("ignored") // after the end: no effect, no block
	if out := gone.output(); out != "" || gone.isClosed() {
		t.Errorf("client gone: got %q, closed %v; want nothing", out, gone.isClosed())
	}
	timedOut := newClient(t)
	term = f.m.Open(timedOut, "192.0.2.1", nil)
	term.Stop(terminal.ErrInactive)
	if m := timedOut.closing(); !*m.Timeout {
		t.Errorf("timeout before start: got %+v, want a closing message with timeout true", m)
	}
	if calls, _ := f.obs.get(); len(calls) != 0 {
		t.Errorf("observer: got %v, want no call for terminals that never started", calls)
	}
}

// TestStopDuringDial: the client leaves while the SSH server has not
// answered; the dial is cancelled and the terminal ends.
func TestStopDuringDial(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Conn, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			accepted <- c // held silent: no SSH banner
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		select {
		case c := <-accepted:
			c.Close()
		default:
		}
	})
	f := newFixture(t, nil)
	c := newClient(t)
	term := f.m.Open(c, "192.0.2.1", nil)
	a := ln.Addr().(*net.TCPAddr)
	term.Start(f.credentialsID(sshbridge.Target{Host: a.IP.String(), Port: a.Port, User: "u", Password: password}))
	conn := <-accepted
	accepted <- conn
	if got := term.State(); got != terminal.Starting {
		t.Errorf("state during the dial: got %v, want %v", got, terminal.Starting)
	}
	term.Stop(terminal.ErrClientGone)
	waitDone(t, term)
	if calls, infos := f.obs.get(); len(calls) != 1 || calls[0] != "failed" || infos[0].Reason != terminal.ReasonClientGone {
		t.Errorf("observer: got %v %+v, want failed, client_gone", calls, infos)
	}
}

// TestResizeDuringDial: a size given while the PTY is being opened at the
// previous one reaches the remote once the shell is up.
func TestResizeDuringDial(t *testing.T) {
	f := newFixture(t, nil)
	c := newClient(t)
	term := f.m.Open(c, "192.0.2.1", nil)
	term.Start(f.credentialsID(f.target()))
	// The server holds the pty-req until it is received here.
	first := <-f.pty
	term.Resize(sshbridge.WindowSize{Rows: 40, Cols: 120})
	if first.Kind != "pty-req" || first.Rows != 24 || first.Cols != 80 {
		t.Errorf("PTY request: got %+v, want a pty-req at 24x80", first)
	}
	c.waitReady()
	if e := f.nextPTY(t); e.Kind != "window-change" || e.Rows != 40 || e.Cols != 120 {
		t.Errorf("after the dial: got %+v, want a window-change to 40x120", e)
	}
}

// TestOutputGate: one output packet is in flight at a time: while the
// transport has not written one, the next waits (and what the remote
// prints meanwhile is coalesced), however long that takes.
func TestOutputGate(t *testing.T) {
	f := newFixture(t, nil)
	c := newClient(t)
	c.hold = true
	term := f.m.Open(c, "192.0.2.1", nil)
	term.Start(f.credentialsID(f.target()))
	f.nextPTY(t)
	c.waitReady()
	term.Input("flood 300000\r")
	// Each invalid byte of the flood reads as U+FFFD, as converting it to
	// runes does.
	want := "flood 300000\r\n" + string([]rune(string(lightssh.FloodData(300000))))
	for done := false; !done; {
		var held []func()
		c.waitFor("a packet or all the flood", func() bool {
			held, c.held = c.held, nil
			done = strings.Contains(c.outputLocked(), want)
			return done || len(held) > 0
		})
		for _, written := range held {
			written()
		}
	}
	c.mu.Lock()
	packets := len(c.messages)
	c.mu.Unlock()
	t.Logf("%d bytes in %d packets", len(want), packets)
	term.Stop(terminal.ErrClientGone)
	waitDone(t, term)
}

// TestManager: List, Notice, files tokens, Drain, Wait, and Open after
// Shutdown.
func TestManager(t *testing.T) {
	f := newFixture(t, func(c *terminal.Config) { c.FilesTokens = true })
	term, c := f.start(t)
	infos := f.m.List()
	if len(infos) != 1 || infos[0].ID != term.ID() || infos[0].State != terminal.Running {
		t.Errorf("List: got %+v, want the running terminal", infos)
	}

	token := c.waitReady().FilesToken
	if got, ok := f.m.FilesTerminal(token); !ok || got != term {
		t.Errorf("FilesTerminal(the token): got %v %v, want the terminal", got, ok)
	}
	if _, ok := f.m.FilesTerminal(token + "x"); ok {
		t.Errorf("FilesTerminal(a forged token): found a terminal")
	}
	if term.Session() == nil {
		t.Errorf("Session of a running terminal: got nil")
	}

	f.m.Notice("The gateway restarts in 30 s.")
	c.waitOutput("\r\n\x1b[93mThe gateway restarts in 30 s.\x1b[0m\r\n")

	f.m.Drain()
	f.startEnds(t, "192.0.2.2", f.credentialsID(f.target()), "shutting down") // after Drain
	if calls, infos := f.obs.get(); len(calls) != 2 || calls[1] != "failed" || infos[1].Reason != terminal.ReasonShutdown {
		t.Errorf("observer after a start refused by Drain: got %v %+v, want started, then failed with reason shutdown", calls, infos)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := f.m.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Wait with a live terminal: got %v, want the context's deadline", err)
	}
	term.Input("exit\r")
	c.closing()
	if err := f.m.Wait(context.Background()); err != nil {
		t.Errorf("Wait: got %v, want nil once the terminal ended", err)
	}
	if _, ok := f.m.FilesTerminal(token); ok {
		t.Errorf("FilesTerminal after the end: found the terminal")
	}

	f.m.Shutdown(context.Background())
	after := newClient(t)
	if term := f.m.Open(after, "192.0.2.3", nil); term.State() != terminal.Ended {
		t.Errorf("Open after Shutdown: got state %v, want ended", term.State())
	}
	if m := after.closing(); !strings.Contains(m.Output, "shutting down") {
		t.Errorf("Open after Shutdown: got %q, want the shutdown message", m.Output)
	}
}

func (c *client) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// TestAdmit: Admit is asked before the dial and told its outcome; a
// refusal ends the terminal with the refusal's text.
func TestAdmit(t *testing.T) {
	var mu sync.Mutex
	var log []string
	note := func(s string) {
		mu.Lock()
		defer mu.Unlock()
		log = append(log, s)
	}
	refuse := false
	f := newFixture(t, func(c *terminal.Config) {
		c.Admit = func(_ context.Context, client string, target sshbridge.Target) (func(error), error) {
			if refuse {
				return nil, &policy.LoginRefusedError{RetryAfter: 1500 * time.Millisecond}
			}
			note("admit " + client + " " + target.User)
			return func(err error) { note(fmt.Sprintf("dialed %v", err)) }, nil
		}
	})
	term, c := f.start(t)
	term.Input("exit\r")
	c.closing()
	waitDone(t, term)
	mu.Lock()
	got := strings.Join(log, "; ")
	mu.Unlock()
	if want := "admit 192.0.2.1 u; dialed <nil>"; got != want {
		t.Errorf("Admit calls: got %q, want %q", got, want)
	}

	refuse = true // read by the next dial, which starts after this write
	f.startEnds(t, "192.0.2.1", f.credentialsID(f.target()), "Connection refused: too many failed logins from your address; try again in 2 s.")
	if calls, infos := f.obs.get(); len(calls) != 3 || calls[2] != "failed" || infos[2].Reason != terminal.ReasonDenied {
		t.Errorf("observer: got %v %+v, want failed with reason denied last", calls, infos)
	}
}
