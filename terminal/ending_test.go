package terminal_test

import (
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alfresco-ssh/alfresco-ssh/internal/syncbuf"
	"github.com/alfresco-ssh/alfresco-ssh/terminal"
)

// newLog returns a logger and a function that returns its lines so far.
func newLog() (*slog.Logger, func() []string) {
	b := &syncbuf.Buffer{}
	lines := func() []string { return strings.Split(strings.TrimSpace(b.String()), "\n") }
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), lines
}

// TestShellEndings: a shell that exits closes with "Connection closed.",
// even when its exit status follows the end of its output (the test
// server sends EOF first, as OpenSSH may); a server that closes the
// connection without an exit status is a lost connection.
func TestShellEndings(t *testing.T) {
	tests := []struct {
		command, want string
		reason        terminal.Reason
	}{
		{"exit", "Connection closed.", terminal.ReasonExit},
		{"drop", "Connection lost: the SSH server closed the connection.", terminal.ReasonLost},
	}
	for _, tt := range tests {
		t.Run(tt.command, func(t *testing.T) {
			f := newFixture(t, nil)
			term, c := f.start(t)
			term.Input(tt.command + "\r")
			if m := c.closing(); m.Output != "\r\n\x1b[91m"+tt.want+"\x1b[0m\r\n" {
				t.Errorf("closing message: got %q, want %q", m.Output, tt.want)
			}
			waitDone(t, term)
			if calls, infos := f.obs.get(); len(calls) != 2 || infos[1].Reason != tt.reason {
				t.Errorf("observer: got %v %+v, want ended with reason %s", calls, infos, tt.reason)
			}
		})
	}
}

// TestEndLoggedOnce: every ending is logged in one line that says why; a
// shell that exited shows no error (no "reason=<nil>"), and a failed login
// is logged once, not once per layer.
func TestEndLoggedOnce(t *testing.T) {
	f := newFixture(t, nil)
	log, logs := newLog()
	c := newClient(t)
	term := f.m.Open(c, "192.0.2.1", log)
	term.Start(f.credentialsID(f.target()))
	c.waitReady()
	term.Input("exit\r")
	waitDone(t, term)
	end := grep(logs(), "terminal ended")
	if len(end) != 1 || !strings.Contains(end[0], "reason=exit") || strings.Contains(end[0], "<nil>") {
		t.Errorf("end of a shell that exited: got %q, want one line with reason=exit and no <nil>", end)
	}

	log, logs = newLog()
	c = newClient(t)
	term = f.m.Open(c, "192.0.2.1", log)
	target := f.target()
	target.Password = "wrong"
	term.Start(f.credentialsID(target))
	waitDone(t, term)
	lines := logs()
	if failed := grep(lines, "authentication failed"); len(failed) != 1 ||
		!strings.Contains(failed[0], "terminal ended") || !strings.Contains(failed[0], "reason=auth_failed") {
		t.Errorf("failed login: got log %q, want the failure once, in the line terminal ended with reason=auth_failed", lines)
	}
}

func grep(lines []string, s string) []string {
	var found []string
	for _, l := range lines {
		if strings.Contains(l, s) {
			found = append(found, l)
		}
	}
	return found
}

// TestStopWhileEnding: a terminal whose end is decided (its connection
// broke) while an output pump still waits for the client to take a
// packet ends on a later Stop (the client leaving, Kill, Shutdown, the
// resume window) instead of waiting for that client forever.
func TestStopWhileEnding(t *testing.T) {
	f := newFixture(t, nil)
	p, tgt := startFreezer(t, f)
	c := newClient(t)
	c.hold = true // the test calls written, until it stops doing so
	term := f.m.Open(c, "192.0.2.1", nil)
	term.Start(f.credentialsID(tgt))
	f.nextPTY(t)
	c.waitReady()
	// Standard error gets "A" and half a character, which its pump holds
	// until the stream ends and then sends. Once both the echo and "A"
	// have gone out (in either order), the last of them is left unwritten.
	term.Input("stderr A\xe4\r")
	for held := false; !held; {
		var written []func()
		c.waitFor("the stderr packet", func() bool {
			written, c.held = c.held, nil
			held = strings.Contains(c.outputLocked(), "stderr A\ufffd\r\n") &&
				slices.ContainsFunc(c.messages, func(m message) bool { return m.Output == "A" })
			return len(written) > 0
		})
		if !held {
			for _, w := range written {
				w()
			}
		}
	}
	// The connection breaks: standard output ends (the end is decided),
	// while the pump of standard error waits to send the half character.
	p.cut()
	// Ending has no event of its own to wait on: look, within the bound.
	for deadline := time.Now().Add(waitTimeout); term.State() != terminal.Ending; {
		if time.Now().After(deadline) {
			t.Fatalf("state: got %v, want %v once the connection broke", term.State(), terminal.Ending)
		}
		time.Sleep(time.Millisecond)
	}
	term.Stop(terminal.ErrClientGone)
	waitDone(t, term)
}
