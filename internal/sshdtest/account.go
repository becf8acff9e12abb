package sshdtest

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// userName is the test login account.
const userName = "alfresco-test"

// lockPath holds the account's current password (root only) and is flocked:
// every live Server holds a shared lock; the password changes only under an
// exclusive lock, so only while no Server of any process is live. /run is
// cleared at boot.
const lockPath = "/run/alfresco-sshdtest.lock"

// Dot files written into the account's home on every Start. The prompt is
// the only output before input; ~/.inputrc turns off bracketed paste, which
// bash 5.1+ would announce with "\x1b[?2004h" before every prompt.
var dotFiles = []struct {
	name, content string
}{
	{".bashrc", "# Written by internal/sshdtest on every test run: a predictable shell.\n" +
		"unset PROMPT_COMMAND HISTFILE\n" +
		"PS1='" + userName + "$ '\n"},
	{".bash_profile", "# Written by internal/sshdtest on every test run.\n" +
		". ~/.bashrc\n"},
	{".bash_logout", "# Written by internal/sshdtest on every test run: nothing to do at logout.\n"},
	{".inputrc", "# Written by internal/sshdtest on every test run.\n" +
		"set enable-bracketed-paste off\n"},
	{".hushlogin", ""},
}

// account is a Server's share of the test account.
type account struct {
	password string
	lock     *os.File // holds the shared flock until release
}

// acquireAccount makes sure the account exists and is set up, and returns
// its password under a shared lock. When no other Server is live it first
// sets up the account and gives it a fresh random password.
func acquireAccount() (*account, error) {
	f, err := os.OpenFile(lockPath, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := setUpIfAlone(f); err != nil {
		f.Close()
		return nil, err
	}
	// Converting a lock is not atomic: another process may take the
	// exclusive lock in between and change the password, so read it only
	// once the shared lock is held.
	if err := flock(f, syscall.LOCK_SH); err != nil {
		f.Close()
		return nil, err
	}
	pw, err := readPassword(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return &account{password: pw, lock: f}, nil
}

// setUpIfAlone sets up the account and rotates its password if it can take
// the exclusive lock at once; otherwise other Servers are live and have done it.
func setUpIfAlone(f *os.File) error {
	err := flock(f, syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := setUpUser(); err != nil {
		return err
	}
	pw, err := randomPassword()
	if err != nil {
		return err
	}
	if err := run(strings.NewReader(userName+":"+pw+"\n"), "chpasswd"); err != nil {
		return err
	}
	if err := f.Truncate(0); err != nil {
		return err
	}
	if _, err := f.WriteAt([]byte(pw), 0); err != nil {
		return err
	}
	return f.Sync()
}

// release gives up the shared lock. Safe on nil and twice.
func (a *account) release() {
	if a == nil || a.lock == nil {
		return
	}
	a.lock.Close() // closing drops the flock
	a.lock = nil
}

func readPassword(f *os.File) (string, error) {
	buf := make([]byte, 256)
	n, err := f.ReadAt(buf, 0)
	if n == 0 {
		return "", fmt.Errorf("no password in %s: %v", lockPath, err)
	}
	return string(buf[:n]), nil
}

// setUpUser creates the account if missing and (re)writes its dot files.
func setUpUser() error {
	home := "/home/" + userName
	u, err := lookupUser(userName)
	if err != nil {
		if err := run(nil, "useradd", "--create-home", "--home-dir", home, "--shell", "/bin/bash", userName); err != nil {
			return err
		}
		if u, err = lookupUser(userName); err != nil {
			return err
		}
	}
	if shell, err := loginShell(userName); err != nil || shell != "/bin/bash" {
		if err := run(nil, "usermod", "--shell", "/bin/bash", userName); err != nil {
			return err
		}
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.MkdirAll(u.HomeDir, 0o755); err != nil {
		return err
	}
	if err := os.Chown(u.HomeDir, uid, gid); err != nil {
		return err
	}
	for _, df := range dotFiles {
		p := filepath.Join(u.HomeDir, df.name)
		if err := os.WriteFile(p, []byte(df.content), 0o644); err != nil {
			return err
		}
		if err := os.Chown(p, uid, gid); err != nil {
			return err
		}
	}
	return nil
}

// lookupUser finds a local account in /etc/passwd.
func lookupUser(name string) (*user.User, error) {
	return user.Lookup(name)
}

// loginShell returns the account's shell from getent passwd.
func loginShell(name string) (string, error) {
	out, err := exec.Command("getent", "passwd", name).Output()
	if err != nil {
		return "", err
	}
	f := strings.Split(strings.TrimSpace(string(out)), ":")
	if len(f) < 7 {
		return "", fmt.Errorf("getent passwd %s: malformed entry", name)
	}
	return f[6], nil
}

func randomPassword() (string, error) {
	b := make([]byte, 18)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// run runs an administration tool, with stdin when it is not nil.
func run(stdin *strings.Reader, tool string, args ...string) error {
	path := lookTool(tool)
	if path == "" {
		return fmt.Errorf("%s: not found", tool)
	}
	cmd := exec.Command(path, args...)
	if stdin != nil {
		cmd.Stdin = stdin
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w: %s", tool, err, bytes.TrimSpace(stderr.Bytes()))
	}
	return nil
}

func flock(f *os.File, how int) error {
	for {
		err := syscall.Flock(int(f.Fd()), how)
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}

// UserDir returns a new directory in User's home, owned by User, which the
// test's cleanup removes: where file transfer tests put their files.
func (s *Server) UserDir(t testing.TB) string {
	t.Helper()
	u, err := lookupUser(s.User)
	if err != nil {
		t.Fatalf("sshdtest: %v", err)
	}
	dir, err := os.MkdirTemp(u.HomeDir, "test-")
	if err != nil {
		t.Fatalf("sshdtest: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s.Chown(t, dir)
	return dir
}

// Chown gives path (a link itself, not its target) to User.
func (s *Server) Chown(t testing.TB, path string) {
	t.Helper()
	u, err := lookupUser(s.User)
	if err == nil {
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		err = os.Lchown(path, uid, gid)
	}
	if err != nil {
		t.Fatalf("sshdtest: %v", err)
	}
}
