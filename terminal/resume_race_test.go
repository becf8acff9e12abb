package terminal_test

import (
	"strings"
	"testing"
	"time"

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
