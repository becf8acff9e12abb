package terminal_test

import (
	"strings"
	"testing"
	"time"

	"github.com/alfresco-ssh/alfresco-ssh/internal/lightssh"
	"github.com/alfresco-ssh/alfresco-ssh/terminal"
)

// startBinary opens a terminal that opted in to binary output (and to
// resume, if asked) and waits for its shell.
func (f *fixture) startBinary(t *testing.T, c *client, resume bool) (*terminal.Terminal, terminal.Ready) {
	t.Helper()
	term := f.m.Open(c, "192.0.2.1", nil)
	term.StartWith(f.credentialsID(f.target()), terminal.StartOptions{Binary: true, Resume: resume})
	f.nextPTY(t)
	return term, c.waitReady()
}

// TestBinaryOutput: with binary output the client gets the remote's
// bytes as they are (the flood's invalid UTF-8 included, which text
// output turns into U+FFFD), one message at a time through the gate;
// the closing message stays text.
func TestBinaryOutput(t *testing.T) {
	f := newFixture(t, nil)
	c := newClient(t)
	c.hold = true
	term, _ := f.startBinary(t, c, false)
	term.Input("flood 300000\r")
	want := "flood 300000\r\n" + string(lightssh.FloodData(300000))
	for done := false; !done; {
		var held []func()
		c.waitFor("a message or all the flood", func() bool {
			held, c.held = c.held, nil
			done = c.outputLocked() == want
			return done || len(held) > 0 || len(c.outputLocked()) > len(want)
		})
		if got := c.output(); len(got) > len(want) || got != want[:len(got)] {
			t.Fatalf("binary output: got %d bytes that are not the %d the remote sent", len(got), len(want))
		}
		for _, written := range held {
			written()
		}
	}
	term.Input("exit\r")
	if m := c.closing(); m.Output != "\r\n\x1b[91mConnection closed.\x1b[0m\r\n" || m.Binary {
		t.Errorf("closing message: got %+v, want the red text 'Connection closed.'", m)
	}
	for _, m := range c.snapshot()[:len(c.snapshot())-1] {
		if !m.Binary || m.Seq != 0 {
			t.Fatalf("message %+v: want binary output, not numbered", m)
		}
	}
	waitDone(t, term)
}

// TestBinaryResume: a resumable terminal with binary output numbers its
// binary messages like text ones, keeps them while detached and replays
// them, every byte once.
func TestBinaryResume(t *testing.T) {
	const buffer = 16 << 10
	f := newFixture(t, resumable(time.Minute, buffer))
	c1 := newClient(t)
	term, r := f.startBinary(t, c1, true)
	term.Input("flood 300000\r")
	c1.waitFor("flood output", func() bool { return len(text(c1.messages, 0)) > buffer/4 })
	term.Stop(terminal.ErrClientGone)
	ms1 := c1.snapshot()
	last := ms1[len(ms1)-1].Seq - 1 // the last one died in the transport

	c2 := newClient(t)
	t2 := f.m.Open(c2, "198.51.100.7", nil)
	t2.Resume(r.ResumeToken, last)
	if r := c2.waitReady(); !r.Resumed {
		t.Fatalf("connection-ready of the resume: got %+v, want resumed", r)
	}
	want := "flood 300000\r\n" + string(lightssh.FloodData(300000))
	got := func() string { return text(ms1, last) + text(c2.messages, 0) }
	c2.waitFor("the whole flood", acking(c2, t2, func() bool { return len(got()) >= len(want) }))
	if g := got(); g != want {
		t.Errorf("binary output across the resume: got %d bytes, want the remote's %d, every byte once", len(g), len(want))
	}
	for i, m := range append(ms1[:last], c2.snapshot()...) {
		if m.Seq != uint64(i+1) || !m.Binary {
			t.Fatalf("message %d: got seq %d, binary %v; want seq %d, binary", i, m.Seq, m.Binary, i+1)
		}
	}
	t2.Input("exit\r")
	if m := c2.closing(); m.Binary || m.Seq == 0 || !strings.Contains(m.Output, "Connection closed.") {
		t.Errorf("closing message: got %+v, want numbered text", m)
	}
	waitDone(t, term)
}
