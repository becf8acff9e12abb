package terminal_test

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

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

// decoded is output as a page shows it: invalid bytes as U+FFFD.
func decoded(s string) string { return string([]rune(s)) }

// TestBinaryOutput: with binary output a large read goes to the client
// as the remote's bytes (the flood's invalid UTF-8 included, which text
// turns into U+FFFD), one message at a time through the gate, each
// ending on a whole character; a keystroke's echo and the closing
// message go as text; decoded, the output is the remote's.
func TestBinaryOutput(t *testing.T) {
	f := newFixture(t, nil)
	c := newClient(t)
	c.hold = true
	term, _ := f.startBinary(t, c, false)
	term.Input("flood 300000\r")
	want := decoded("flood 300000\r\n" + string(lightssh.FloodData(300000)))
	for done := false; !done; {
		var held []func()
		c.waitFor("a message or all the flood", func() bool {
			held, c.held = c.held, nil
			done = decoded(c.outputLocked()) == want
			return done || len(held) > 0 || len(c.outputLocked()) > 2*len(want)
		})
		for _, written := range held {
			written()
		}
	}
	term.Input("exit\r")
	if m := c.closing(); m.Output != "\r\n\x1b[91mConnection closed.\x1b[0m\r\n" || m.Binary {
		t.Errorf("closing message: got %+v, want the red text 'Connection closed.'", m)
	}
	ms := c.snapshot()
	if ms[0].Binary || !strings.HasPrefix(ms[0].Output, "flood 300000\r\n") {
		t.Errorf("first message (binary %v): want the echo, as text", ms[0].Binary)
	}
	binary := 0
	for _, m := range ms {
		if m.Seq != 0 {
			t.Fatalf("message %+v: numbered, want not", m)
		}
		if m.Binary {
			binary++
			if len(m.Output) < 8<<10 || endsMidCharacter(m.Output) {
				t.Fatalf("binary message of %d bytes ending %q: want 8 KiB or more, ending on a whole character", len(m.Output), m.Output[max(0, len(m.Output)-4):])
			}
		}
	}
	if binary == 0 {
		t.Error("no binary message")
	}
	t.Logf("%d messages, %d binary", len(ms), binary)
	waitDone(t, term)
}

// TestBinaryResume: a resumable terminal with binary output numbers its
// binary messages like text ones, keeps them while detached and replays
// them, every byte once.
func TestBinaryResume(t *testing.T) {
	const buffer = 16 << 10
	f := newFixture(t, func(c *terminal.Config) {
		resumable(time.Minute, buffer)(c)
		c.BinaryMin = 1 // every message binary, whatever the reads' sizes
	})
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
	want := decoded("flood 300000\r\n" + string(lightssh.FloodData(300000)))
	got := func() string { return decoded(text(ms1, last) + text(c2.messages, 0)) }
	c2.waitFor("the whole flood", acking(c2, t2, func() bool { return len(got()) >= len(want) }))
	if g := got(); g != want {
		t.Errorf("binary output across the resume: got %d bytes, want the remote's %d, every byte once", len(g), len(want))
	}
	binary := 0
	for i, m := range append(ms1[:last], c2.snapshot()...) {
		if m.Seq != uint64(i+1) {
			t.Fatalf("message %d: got seq %d, want %d", i, m.Seq, i+1)
		}
		if m.Binary {
			binary++
		}
	}
	if binary == 0 {
		t.Error("no binary message")
	}
	t2.Input("exit\r")
	if m := c2.closing(); m.Binary || m.Seq == 0 || !strings.Contains(m.Output, "Connection closed.") {
		t.Errorf("closing message: got %+v, want numbered text", m)
	}
	waitDone(t, term)
}

// endsMidCharacter reports whether s ends with the start of a valid
// multi-byte character that is cut short.
func endsMidCharacter(s string) bool {
	for i := len(s) - 1; i >= 0 && i >= len(s)-utf8.UTFMax; i-- {
		if utf8.RuneStart(s[i]) {
			return !utf8.FullRuneInString(s[i:])
		}
	}
	return false
}
