package terminal_test

import (
	"context"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/alfresco-ssh/alfresco-ssh/terminal"
)

// filesExhausted is a dialer of a process without a free file descriptor.
type filesExhausted struct{}

func (filesExhausted) DialContext(context.Context, string, string) (net.Conn, error) {
	return nil, &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("socket", syscall.EMFILE)}
}

// TestAtCapacity: when the gateway has no file descriptor left, the user
// reads that it is at capacity (not that the host is unreachable), and
// the log says so once, not once per attempt.
func TestAtCapacity(t *testing.T) {
	log, logs := newLog()
	f := newFixture(t, func(c *terminal.Config) {
		c.SSH.Dialer = filesExhausted{}
		c.Logger = log
	})
	for range 3 {
		f.startEnds(t, "192.0.2.1", f.credentialsID(f.target()), "Connection failed: the gateway is at capacity, try again later.")
	}
	if lines := logs(); len(grep(lines, "at capacity")) != 1 || len(grep(lines, "terminal ended")) != 0 {
		t.Errorf("log: got %q, want one line saying the gateway is at capacity", lines)
	}
	if calls, infos := f.obs.get(); len(calls) != 3 || infos[0].Reason != terminal.ReasonDenied {
		t.Errorf("observer: got %v %+v, want 3 failures, denied", calls, infos)
	}
	if !f.m.AtCapacity(syscall.ENFILE) || f.m.AtCapacity(syscall.ECONNREFUSED) {
		t.Errorf("AtCapacity: want true for ENFILE, false for ECONNREFUSED")
	}
}
