package sshdtest

import (
	"bytes"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/alfresco-ssh/alfresco-ssh/internal/testdeps"
)

// dial logs in to s, checking that the host key is one of s.HostKeys.
func dial(t *testing.T, s *Server, auth ssh.AuthMethod, hostKeyAlgos ...string) (*ssh.Client, error) {
	t.Helper()
	return ssh.Dial("tcp", s.Addr, &ssh.ClientConfig{
		User:              s.User,
		Auth:              []ssh.AuthMethod{auth},
		HostKeyCallback:   hostKeyIn(s.HostKeys),
		HostKeyAlgorithms: hostKeyAlgos,
		Timeout:           10 * time.Second,
	})
}

func hostKeyIn(keys []ssh.PublicKey) ssh.HostKeyCallback {
	return func(_ string, _ net.Addr, key ssh.PublicKey) error {
		for _, k := range keys {
			if bytes.Equal(k.Marshal(), key.Marshal()) {
				return nil
			}
		}
		return &knownhosts.KeyError{}
	}
}

func echoOK(t *testing.T, c *ssh.Client) {
	t.Helper()
	sess, err := c.NewSession()
	if err != nil {
		t.Fatalf("new session: %v", err)
	}
	defer sess.Close()
	out, err := sess.CombinedOutput("echo ok")
	if err != nil {
		t.Fatalf("echo ok: %v (output %q)", err, out)
	}
	if got, want := string(out), "ok\n"; got != want {
		t.Errorf("echo ok printed %q, want %q", got, want)
	}
}

func TestKeyKindsParse(t *testing.T) {
	s := Start(t)
	for _, kind := range KeyKinds() {
		t.Run(kind, func(t *testing.T) {
			key := s.Key(t, kind)
			block, _ := pem.Decode(key)
			if block == nil {
				t.Fatalf("no PEM block in %q", key)
			}
			if got, want := block.Type, PEMType(kind); got != want {
				t.Errorf("PEM type %q, want %q", got, want)
			}
			if _, err := ssh.ParsePrivateKey(key); err != nil {
				t.Errorf("ssh.ParsePrivateKey: %v", err)
			}
		})
	}
}

func TestLogin(t *testing.T) {
	s := Start(t)
	if got := s.Children(); got != 0 {
		t.Fatalf("Children() after Start = %d, want 0", got)
	}
	auths := map[string]ssh.AuthMethod{"password": ssh.Password(s.Password)}
	for _, kind := range KeyKinds() {
		signer, err := ssh.ParsePrivateKey(s.Key(t, kind))
		if err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		auths[kind] = ssh.PublicKeys(signer)
	}
	for _, name := range append([]string{"password"}, KeyKinds()...) {
		t.Run(name, func(t *testing.T) {
			c, err := dial(t, s, auths[name])
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			echoOK(t, c)
			if got := s.Children(); got == 0 {
				t.Errorf("Children() while connected = 0, want > 0")
			}
			c.Close()
			if err := s.WaitNoChildren(10 * time.Second); err != nil {
				t.Errorf("after close: %v", err)
			}
		})
	}
	t.Run("wrong password", func(t *testing.T) {
		c, err := dial(t, s, ssh.Password(s.Password+"x"))
		if err == nil {
			c.Close()
			t.Fatal("dial with a wrong password succeeded")
		}
	})
}

func TestHostKeys(t *testing.T) {
	s := Start(t)
	if len(s.HostKeys) != 3 {
		t.Fatalf("got %d host keys, want 3", len(s.HostKeys))
	}
	known := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(known, s.KnownHosts(), 0o600); err != nil {
		t.Fatal(err)
	}
	callback, err := knownhosts.New(known)
	if err != nil {
		t.Fatalf("knownhosts.New: %v", err)
	}
	for i, algo := range []string{ssh.KeyAlgoED25519, ssh.KeyAlgoECDSA256, ssh.KeyAlgoRSASHA512} {
		t.Run(algo, func(t *testing.T) {
			var presented ssh.PublicKey
			c, err := ssh.Dial("tcp", s.Addr, &ssh.ClientConfig{
				User: s.User,
				Auth: []ssh.AuthMethod{ssh.Password(s.Password)},
				HostKeyCallback: func(host string, remote net.Addr, key ssh.PublicKey) error {
					presented = key
					return callback(host, remote, key)
				},
				HostKeyAlgorithms: []string{algo},
				Timeout:           10 * time.Second,
			})
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			c.Close()
			if !bytes.Equal(presented.Marshal(), s.HostKeys[i].Marshal()) {
				t.Errorf("presented %s key, want HostKeys[%d] (%s)", presented.Type(), i, s.HostKeys[i].Type())
			}
		})
	}
	if err := s.WaitNoChildren(10 * time.Second); err != nil {
		t.Error(err)
	}
}

// TestPrompt checks the promise that the prompt is the first and only output
// of an interactive login.
func TestPrompt(t *testing.T) {
	s := Start(t)
	c, err := dial(t, s, ssh.Password(s.Password))
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	if err := sess.RequestPty("xterm", 24, 80, ssh.TerminalModes{}); err != nil {
		t.Fatal(err)
	}
	stdin, err := sess.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out lockedBuffer
	sess.Stdout = &out
	if err := sess.Shell(); err != nil {
		t.Fatal(err)
	}
	const prompt = "alfresco-test$ "
	waitFor(t, &out, prompt)
	if got := out.String(); got != prompt {
		t.Errorf("output before the first input = %q, want %q", got, prompt)
	}
	if _, err := stdin.Write([]byte("echo $((6*7)); exit\n")); err != nil {
		t.Fatal(err)
	}
	if err := sess.Wait(); err != nil {
		t.Errorf("shell exit: %v", err)
	}
	if got := out.String(); !strings.Contains(got, "\r\n42\r\n") {
		t.Errorf("output %q does not hold the result 42", got)
	}
	c.Close()
	if err := s.WaitNoChildren(10 * time.Second); err != nil {
		t.Error(err)
	}
}

func TestWithConfig(t *testing.T) {
	s := Start(t, WithConfig("MaxSessions 1"))
	c, err := dial(t, s, ssh.Password(s.Password))
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	first, err := c.NewSession()
	if err != nil {
		t.Fatalf("first session: %v", err)
	}
	defer first.Close()
	if second, err := c.NewSession(); err == nil {
		second.Close()
		t.Errorf("second session opened, want it refused by MaxSessions 1")
	}
	first.Close()
	c.Close()
	if err := s.WaitNoChildren(10 * time.Second); err != nil {
		t.Error(err)
	}
}

// TestSFTPSubsystem checks that sshd serves the "sftp" subsystem, and that
// a caller's own Subsystem line replaces it (sshd refuses a second one).
func TestSFTPSubsystem(t *testing.T) {
	for _, tt := range []struct {
		name   string
		opts   []Option
		wantOK bool
	}{
		{"default", nil, true},
		{"replaced", []Option{WithConfig("Subsystem other internal-sftp")}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := Start(t, tt.opts...)
			c, err := dial(t, s, ssh.Password(s.Password))
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			defer c.Close()
			sess, err := c.NewSession()
			if err != nil {
				t.Fatalf("new session: %v", err)
			}
			defer sess.Close()
			err = sess.RequestSubsystem("sftp")
			if got := err == nil; got != tt.wantOK {
				t.Errorf("subsystem sftp accepted: got %v (err %v), want %v", got, err, tt.wantOK)
			}
			sess.Close()
			c.Close()
			if err := s.WaitNoChildren(10 * time.Second); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestTwoServers checks that live Servers share the account's password.
func TestTwoServers(t *testing.T) {
	a := Start(t)
	b := Start(t)
	if a.Password != b.Password {
		t.Fatalf("live servers have different passwords")
	}
	for _, s := range []*Server{a, b} {
		c, err := dial(t, s, ssh.Password(s.Password))
		if err != nil {
			t.Fatalf("dial %s: %v", s.Addr, err)
		}
		echoOK(t, c)
		c.Close()
		if err := s.WaitNoChildren(10 * time.Second); err != nil {
			t.Error(err)
		}
	}
}

func TestParseStat(t *testing.T) {
	tests := []struct {
		stat string
		want proc
		ok   bool
	}{
		{"12 (sshd) S 1 12 12 0", proc{pid: 12, ppid: 1, state: 'S', comm: "sshd"}, true},
		{"13 (a b) c)) Z 12 1", proc{pid: 13, ppid: 12, state: 'Z', comm: "a b) c)"}, true},
		{"14 sshd S 1", proc{}, false},
		{"15 (x) S", proc{}, false},
	}
	for _, tt := range tests {
		var pid int
		for _, r := range tt.stat {
			if r == ' ' {
				break
			}
			pid = pid*10 + int(r-'0')
		}
		got, ok := parseStat(pid, []byte(tt.stat))
		if ok != tt.ok || got != tt.want {
			t.Errorf("parseStat(%q) = %+v, %v; want %+v, %v", tt.stat, got, ok, tt.want, tt.ok)
		}
	}
}

// lockedBuffer collects a session's output and tells waiters when it grows.
type lockedBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{} // closed and replaced on every write
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.changed != nil {
		close(b.changed)
		b.changed = nil
	}
	return b.buf.Write(p)
}

// snapshot returns the output so far and a channel closed by the next write.
func (b *lockedBuffer) snapshot() (string, <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.changed == nil {
		b.changed = make(chan struct{})
	}
	return b.buf.String(), b.changed
}

func (b *lockedBuffer) String() string {
	s, _ := b.snapshot()
	return s
}

// waitFor waits until the output contains want.
func waitFor(t *testing.T, b *lockedBuffer, want string) {
	t.Helper()
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	for {
		got, changed := b.snapshot()
		if strings.Contains(got, want) {
			return
		}
		select {
		case <-changed:
		case <-timeout.C:
			t.Fatalf("output %q does not contain %q after 10s", got, want)
		}
	}
}

// TestLaunch checks the non-test entry point: a working server, and a Close
// that removes everything and can be repeated.
func TestLaunch(t *testing.T) {
	s, err := Launch(WithConfig("MaxSessions 5"))
	if errors.Is(err, ErrUnavailable) {
		testdeps.Missing(t, err.Error())
	}
	if err != nil {
		t.Fatalf("Launch: got error %v, want nil", err)
	}
	dir := s.dir
	c, err := dial(t, s, ssh.Password(s.Password))
	if err != nil {
		s.Close()
		t.Fatalf("dial: %v", err)
	}
	echoOK(t, c)
	c.Close()
	if err := s.Close(); err != nil {
		t.Errorf("Close: got error %v, want nil", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: got error %v, want nil", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("directory %s after Close: got %v, want it removed", dir, err)
	}
	if got := s.Children(); got != 0 {
		t.Errorf("Children() after Close = %d, want 0", got)
	}
	if _, err := net.DialTimeout("tcp", s.Addr, time.Second); err == nil {
		t.Errorf("dial %s after Close: got a connection, want an error", s.Addr)
	}
}

func TestUnavailableError(t *testing.T) {
	err := fmt.Errorf("wrapped: %w", &unavailableError{"sshdtest: no /usr/sbin/sshd"})
	if !errors.Is(err, ErrUnavailable) {
		t.Errorf("errors.Is(%v, ErrUnavailable) = false, want true", err)
	}
	if got, want := (&unavailableError{"reason"}).Error(), "reason"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if errors.Is(errors.New("other"), ErrUnavailable) {
		t.Errorf("an unrelated error matches ErrUnavailable")
	}
}

// TestUserDir: a directory of the test user's, gone after the test.
func TestUserDir(t *testing.T) {
	s := Start(t)
	var dir string
	t.Run("make", func(t *testing.T) {
		dir = s.UserDir(t)
		u, err := lookupUser(s.User)
		if err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(dir)
		if err != nil || !fi.IsDir() || filepath.Dir(dir) != u.HomeDir {
			t.Fatalf("UserDir: got %q (%v, %v), want a directory in %s", dir, fi, err, u.HomeDir)
		}
		if st := fi.Sys().(*syscall.Stat_t); fmt.Sprint(st.Uid) != u.Uid {
			t.Errorf("owner of %s: got uid %d, want %s", dir, st.Uid, u.Uid)
		}
	})
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("after the test: %s still there (%v)", dir, err)
	}
}
