package sshbridge_test

import (
	"errors"
	"os/user"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"go.uber.org/goleak"

	"github.com/alfresco-ssh/alfresco-ssh/internal/sshdtest"
	"github.com/alfresco-ssh/alfresco-ssh/sshbridge"
)

// sshdTarget starts sshd with opts and returns a password target for it.
func sshdTarget(t *testing.T, opts ...sshdtest.Option) (*sshdtest.Server, sshbridge.Target) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts sshd")
	}
	sshd := sshdtest.Start(t, opts...)
	return sshd, sshbridge.Target{Host: sshd.Host, Port: sshd.Port, User: sshd.User, Password: sshd.Password}
}

// getwd checks that c works: its working directory is the user's home.
func getwd(t *testing.T, c *sftp.Client, home string) {
	t.Helper()
	wd, err := c.Getwd()
	if err != nil {
		t.Fatalf("Getwd: got error %v, want nil", err)
	}
	if wd != home {
		t.Errorf("Getwd: got %q, want %q", wd, home)
	}
}

// echo checks that the bash of sshdtest runs a command.
func echo(t *testing.T, sess *sshbridge.Session, out *output) {
	t.Helper()
	if _, err := sess.Write([]byte("echo sftp-$((40+2))\r")); err != nil {
		t.Fatalf("Write: got error %v, want nil", err)
	}
	out.waitFor(t, "sftp-42")
}

// TestSFTP opens SFTP on a live shell session of a real sshd: one client
// however many callers ask at once, at most two goroutines for it, the
// shell still working beside it, and nothing left once the session closes.
func TestSFTP(t *testing.T) {
	sshd, target := sshdTarget(t)
	u, err := user.Lookup(sshd.User)
	if err != nil {
		t.Fatal(err)
	}
	ignore := goleak.IgnoreCurrent()
	sess := dialShell(t, sshbridge.Config{Timeout: waitTimeout}, target, sshbridge.DefaultWindowSize)
	out := readOutput(t, sess, sess)
	before := runtime.NumGoroutine()

	const callers = 4
	clients := make([]*sftp.Client, callers)
	errs := make([]error, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() { clients[i], errs[i] = sess.SFTP() })
	}
	wg.Wait()
	for i := range callers {
		if errs[i] != nil {
			t.Fatalf("SFTP (caller %d): got error %v, want nil", i, errs[i])
		}
		if clients[i] != clients[0] {
			t.Errorf("SFTP (caller %d): got another client than caller 0, want one shared client", i)
		}
	}
	getwd(t, clients[0], u.HomeDir)
	if again, err := sess.SFTP(); err != nil || again != clients[0] {
		t.Errorf("SFTP again: got (%p, %v), want the same client (%p, nil)", again, err, clients[0])
	}
	if got := runtime.NumGoroutine() - before; got > 2 {
		t.Errorf("goroutines for SFTP: got %d, want at most 2", got)
	}
	echo(t, sess, out)

	sess.Close()
	if _, err := clients[0].Getwd(); err == nil {
		t.Errorf("Getwd after the session closed: got nil error, want one")
	}
	// The shell's reader ends once it has handed over what came before
	// the close (a late prompt would otherwise hold it in its send).
	out.waitEnd(t)
	goleak.VerifyNone(t, ignore)
}

// TestSFTPRefused checks the error when sshd serves no sftp subsystem, and
// that the shell is unharmed.
func TestSFTPRefused(t *testing.T) {
	_, target := sshdTarget(t, sshdtest.WithConfig("Subsystem other internal-sftp"))
	sess := dialShell(t, sshbridge.Config{Timeout: waitTimeout}, target, sshbridge.DefaultWindowSize)
	out := readOutput(t, sess, sess)
	_, err := sess.SFTP()
	if !errors.Is(err, sshbridge.ErrNoSFTP) {
		t.Errorf("SFTP: got error %v, want one matching ErrNoSFTP", err)
	}
	echo(t, sess, out)
}

// TestSFTPReopen checks that when sshd closes an idle SFTP channel
// (ChannelTimeout), the next call opens a new one.
func TestSFTPReopen(t *testing.T) {
	sshd, target := sshdTarget(t, sshdtest.WithConfig("ChannelTimeout session:subsystem:sftp=3"))
	u, err := user.Lookup(sshd.User)
	if err != nil {
		t.Fatal(err)
	}
	sess := dialShell(t, sshbridge.Config{Timeout: waitTimeout}, target, sshbridge.DefaultWindowSize)
	defer sess.Close()
	first, err := sess.SFTP()
	if err != nil {
		t.Fatalf("SFTP: got error %v, want nil", err)
	}
	getwd(t, first, u.HomeDir)
	ended := make(chan error, 1)
	go func() { ended <- first.Wait() }()
	select {
	case <-ended:
	case <-time.After(waitTimeout):
		t.Fatalf("sshd did not close the idle SFTP channel within %v", waitTimeout)
	}
	second, err := sess.SFTP()
	if err != nil {
		t.Fatalf("SFTP after the channel ended: got error %v, want nil", err)
	}
	if second == first {
		t.Fatalf("SFTP after the channel ended: got the ended client, want a new one")
	}
	getwd(t, second, u.HomeDir)
}
