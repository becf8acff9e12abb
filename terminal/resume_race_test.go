package terminal_test

import (
	"strings"
	"testing"
	"time"

	"github.com/alfresco-ssh/alfresco-ssh/internal/waitfor"
	"github.com/alfresco-ssh/alfresco-ssh/policy"
	"github.com/alfresco-ssh/alfresco-ssh/terminal"
)

// TestResumeRacingEnd: a client that took a session's resume token while
// the session was ending gets the closing message of a refused resume,
// never silence, even when the session ends before it hears of the
// resume. The session is held in its end (in Config.Connect's release,
// before it forgets its token) until the resuming client has taken the
// token and handed its own terminal over.
func TestResumeRacingEnd(t *testing.T) {
	const sessionAddr = "192.0.2.1"
	inRelease, finishEnd := make(chan struct{}), make(chan struct{})
	f := newFixture(t, func(c *terminal.Config) {
		c.ResumeWindow = time.Minute
		c.Connect = func(client string) (func(), error) {
			if client != sessionAddr {
				return nil, nil
			}
			return func() { close(inRelease); <-finishEnd }, nil
		}
	})
	term, c1, token := f.startResumable(t)
	term.Stop(terminal.ErrKilled)
	select {
	case <-inRelease:
	case <-time.After(waitTimeout):
		t.Fatal("the killed session did not release its slot")
	}

	c2 := newClient(t)
	t2 := f.m.Open(c2, "198.51.100.7", nil)
	t2.Resume(token, c1.lastSeq())
	waitDone(t, t2) // the token is taken: t2 hands its client over
	close(finishEnd)
	waitDone(t, term)
	if m := c2.closing(); m.Output != "\r\n\x1b[91mThe session has ended.\x1b[0m\r\n" {
		t.Errorf("resuming client's closing message: got %q, want the red 'The session has ended.'", m.Output)
	}
	if m := c1.closing(); !strings.Contains(m.Output, "administrator") {
		t.Errorf("session's client closing message: got %q, want ended by an administrator", m.Output)
	}
}

// TestResumeAtLimitSameKey: a client refused by the limits is let in to
// resume a session detached by another address of the same limits key
// (an IPv6 /64: a browser's privacy address changes), and only then.
func TestResumeAtLimitSameKey(t *testing.T) {
	log, logs := newLog()
	f := newFixture(t, func(c *terminal.Config) {
		c.ResumeWindow = time.Minute
		c.Logger = log
		first := true
		c.Connect = func(string) (func(), error) { // Open calls it on its caller's goroutine
			if first {
				first = false
				return nil, nil
			}
			return nil, policy.ErrTooManyClientSessions
		}
		c.ClientKey = func(addr string) string { return addr[:strings.LastIndex(addr, ":")] }
	})
	c1 := newClient(t)
	term := f.m.Open(c1, "2001:db8:1:2:1", nil)
	term.StartResumable(f.credentialsID(f.target()))
	f.nextPTY(t)
	token := c1.waitReady().ResumeToken
	term.Stop(terminal.ErrClientGone)
	waitfor.Cond(t, "the session detached", func() bool { return len(grep(logs(), "terminal detached")) == 1 })

	other := newClient(t)
	f.m.Open(other, "2001:db8:1:3:9", nil)
	if m := other.closing(); !strings.Contains(m.Output, "too many sessions from your address") {
		t.Errorf("a client of another key: got %q, want the refusal", m.Output)
	}
	c2 := newClient(t)
	f.m.Open(c2, "2001:db8:1:2:9", nil).Resume(token, c1.lastSeq())
	if r := c2.waitReady(); !r.Resumed {
		t.Errorf("resume from the same key at the limit: got %+v, want resumed", r)
	}
}
