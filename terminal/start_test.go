package terminal_test

import (
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alfresco-ssh/alfresco-ssh/policy"
	"github.com/alfresco-ssh/alfresco-ssh/sshbridge"
	"github.com/alfresco-ssh/alfresco-ssh/terminal"
)

// TestStartTimeout: a client that never sends a valid start-session is
// closed with a red message once StartTimeout has passed.
func TestStartTimeout(t *testing.T) {
	f := newFixture(t, func(c *terminal.Config) { c.StartTimeout = 100 * time.Millisecond })
	c := newClient(t)
	term := f.m.Open(c, "192.0.2.1", nil)
	if m := c.closing(); !strings.Contains(m.Output, "the session did not start in time") {
		t.Errorf("closing message: got %q, want the session did not start in time", m.Output)
	}
	waitDone(t, term)
	// A terminal that starts in time runs past it.
	term, c = f.start(t)
	time.Sleep(200 * time.Millisecond) // past StartTimeout: nothing may happen
	term.Input("exit\r")
	if m := c.closing(); !strings.Contains(m.Output, "Connection closed.") {
		t.Errorf("started terminal: got %q, want its own end", m.Output)
	}
}

// TestMalformedStart: a malformed start-session (Start with "") ends the
// terminal with the closing message of unknown credentials, never silence.
func TestMalformedStart(t *testing.T) {
	f := newFixture(t, nil)
	f.startEnds(t, "192.0.2.1", "", "credentials are unknown")
	if calls, infos := f.obs.get(); len(calls) != 1 || infos[0].Reason != terminal.ReasonInvalidCredentials {
		t.Errorf("observer: got %v %+v, want failed, invalid_credentials", calls, infos)
	}
}

// TestConnectLimit: Connect counts every client from Open on; a refused
// one gets its closing message at once, and the slot of an accepted one
// is released when its terminal ends, started or not.
func TestConnectLimit(t *testing.T) {
	var mu sync.Mutex
	open := 0
	f := newFixture(t, func(c *terminal.Config) {
		c.Connect = func(string) (func(), error) {
			mu.Lock()
			defer mu.Unlock()
			if open == 1 {
				return nil, policy.ErrTooManyClientSessions
			}
			open++
			return func() {
				mu.Lock()
				defer mu.Unlock()
				open--
			}, nil
		}
	})
	first := newClient(t)
	held := f.m.Open(first, "192.0.2.1", nil)
	for range 3 {
		c := newClient(t)
		term := f.m.Open(c, "192.0.2.1", nil)
		if term.State() != terminal.Ended {
			t.Errorf("over the limit: got state %v, want ended", term.State())
		}
		if m := c.closing(); !strings.Contains(m.Output, "too many sessions from your address") {
			t.Errorf("over the limit: got %q", m.Output)
		}
	}
	held.Stop(terminal.ErrClientGone)
	waitDone(t, held)
	term, c := f.start(t) // the slot is free again
	term.Input("exit\r")
	c.closing()
	waitDone(t, term)
	f.m.Shutdown(t.Context())
	late := newClient(t)
	f.m.Open(late, "192.0.2.1", nil) // refused: its slot is given back
	late.closing()
	mu.Lock()
	defer mu.Unlock()
	if open != 0 {
		t.Errorf("slots held after every terminal ended: got %d, want 0", open)
	}
}

// TestInputBound: input waits for the remote in a bounded buffer; when the
// remote reads nothing and more arrives, the terminal ends with a red
// message instead of holding it all, and input before that reached the
// remote in order.
func TestInputBound(t *testing.T) {
	f := newFixture(t, nil)
	term, c := f.start(t)
	term.Input("size\r")
	c.waitOutput("24 80\r\n")
	term.Input("hang\r")
	msg := strings.Repeat("x", 1<<20)
	for range 64 {
		term.Input(msg) // returns at once
	}
	if m := c.closing(); !strings.Contains(m.Output, "Session closed: the remote is not reading input.") {
		t.Errorf("closing message: got %q", m.Output)
	}
	waitDone(t, term)
	if calls, infos := f.obs.get(); len(calls) != 2 || infos[1].Reason != terminal.ReasonLost {
		t.Errorf("observer: got %v %+v, want ended, connection_lost", calls, infos)
	}
}

// TestStartTimeoutSparesDials: once start-session has come, the dial's
// own timeout bounds it, not StartTimeout (under load a dial may begin
// late and still succeed).
func TestStartTimeoutSparesDials(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			defer c.Close()
			io.Copy(io.Discard, c) // silent until the client gives up
		}
	}()
	f := newFixture(t, func(c *terminal.Config) {
		c.StartTimeout = 50 * time.Millisecond
		c.SSH.Timeout = 500 * time.Millisecond
	})
	a := ln.Addr().(*net.TCPAddr)
	f.startEnds(t, "192.0.2.1", f.credentialsID(sshbridge.Target{Host: a.IP.String(), Port: a.Port, User: "u", Password: password}),
		"Connection failed: timed out.")
}

// TestInputDuringDial: input given while the session is dialled is
// dropped: it never reaches the shell once it is up (and dropping it does
// not race with the end of the dial).
func TestInputDuringDial(t *testing.T) {
	f := newFixture(t, nil)
	c := newClient(t)
	term := f.m.Open(c, "192.0.2.1", nil)
	term.Start(f.credentialsID(f.target()))
	term.Input("early\r") // the dial waits until the pty-req is taken below
	f.nextPTY(t)
	c.waitReady()
	term.Input("size\r")
	c.waitOutput("24 80\r\n")
	if out := c.output(); strings.Contains(out, "early") {
		t.Errorf("output %q: input given during the dial reached the shell", out)
	}
}
