// Package sshdtest starts a real OpenSSH sshd on 127.0.0.1 for integration
// tests and benchmarks.
//
// Start runs /usr/sbin/sshd in the foreground (-D -e) with a configuration of
// its own in a fresh temporary directory: newly generated host keys, an
// authorized_keys file holding the public halves of the client keys that Key
// returns, and password authentication for one local test account (User,
// created with useradd when missing, its home kept across runs), and the
// "sftp" subsystem (internal-sftp) for file transfers. The test's
// cleanup fails the test if an SSH session is still alive, then stops sshd and
// everything it started and removes the directory.
//
// Launch does the same outside a test (a benchmark command, for instance):
// it returns an error instead of failing a test, and the caller stops the
// server with Close.
//
// sshd must run as root. When it cannot run here (not root, not Linux, no
// /usr/sbin/sshd, ...) Start skips the test, except when the environment
// variable CI is "true": then it fails it, so nothing is silently skipped in
// CI. Launch reports that case with an error matching ErrUnavailable.
//
// The account's shell is bash with the prompt "alfresco-test$ " and nothing
// printed before it at login (no motd, no last-login line, bracketed paste
// off, no PROMPT_COMMAND), so tests can wait for the prompt literally.
//
// The account, and so its password, is shared by every Server of every test
// process on the machine (go test runs packages in parallel). Start gives it
// a fresh random password when no other Server is live anywhere; otherwise it
// joins the live password. A file lock in /run coordinates this.
//
// Start a Server before whatever connects to it (the gateway under test), so
// that the gateway's cleanup, which runs first, closes its SSH sessions before
// this package checks that none is left.
//
// Concurrency: Start must be called from the test goroutine; Launch from any
// goroutine. The fields of a Server are read-only after Start or Launch; its
// methods are safe for concurrent use.
package sshdtest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/alfresco-ssh/alfresco-ssh/internal/testdeps"
)

// sshdPath is where sshd must be: it re-executes itself by this absolute path
// for every connection.
const sshdPath = "/usr/sbin/sshd"

const (
	startTimeout = 10 * time.Second // sshd up and answering with its banner
	leakTimeout  = 5 * time.Second  // sessions gone at cleanup
	stopTimeout  = 5 * time.Second  // sshd exited after SIGTERM
	bindAttempts = 5                // ports tried when another process took ours
)

// Server is a running sshd. Its fields are set by Start and never change.
type Server struct {
	Addr     string          // Addr is "127.0.0.1:port".
	Host     string          // Host is "127.0.0.1".
	Port     int             // Port is the TCP port sshd listens on.
	User     string          // User is the test login user.
	Password string          // Password is User's password.
	HostKeys []ssh.PublicKey // HostKeys are the host keys sshd presents: ed25519, ecdsa, rsa.

	dir     string   // temporary directory: config, keys, log
	logPath string   // sshd's stderr
	sshd    *daemon  // the sshd listener; nil until it is ready
	account *account // shared lock on the test account

	closeMu sync.Mutex // serialises teardown (Close, the test cleanup)
	stopped bool       // sshd has been stopped; under closeMu
	removed bool       // dir has been removed; under closeMu
}

// Option changes how Start configures sshd.
type Option func(*options)

type options struct {
	config []string
}

// WithConfig adds lines to sshd_config, for example WithConfig("MaxStartups 10").
//
// sshd keeps the first value it reads for most keywords, so these lines are
// written before the package's own settings and override them. Lines from the
// first "Match" on are written at the end, where a Match block must be.
func WithConfig(lines ...string) Option {
	return func(o *options) { o.config = append(o.config, lines...) }
}

// ErrUnavailable is matched (with errors.Is) by the error Launch returns
// when sshd cannot run on this machine: not root, not Linux, no
// /usr/sbin/sshd, the test account cannot be set up, ...
var ErrUnavailable = errors.New("sshdtest: sshd cannot run here")

// unavailableError is a reason sshd cannot run here; it matches
// ErrUnavailable and reads as the reason alone.
type unavailableError struct{ reason string }

func (e *unavailableError) Error() string        { return e.reason }
func (e *unavailableError) Is(target error) bool { return target == ErrUnavailable }

// Start starts sshd for the test and stops it in t.Cleanup. See the package
// documentation for what it sets up and when it skips the test.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s, err := Launch(opts...)
	if errors.Is(err, ErrUnavailable) {
		testdeps.Missing(t, err.Error())
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.cleanup(t) })
	return s
}

// Launch starts sshd, as Start does, for a caller that is not a test. The
// caller must call Close when done. When sshd cannot run here the error
// matches ErrUnavailable; the CI variable plays no part.
func Launch(opts ...Option) (*Server, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if reason := unavailable(); reason != "" {
		return nil, &unavailableError{reason}
	}
	acct, err := acquireAccount()
	if err != nil {
		return nil, &unavailableError{fmt.Sprintf("sshdtest: prepare test user %s: %v", userName, err)}
	}
	s := &Server{
		Host:     "127.0.0.1",
		User:     userName,
		Password: acct.password,
		account:  acct,
	}
	if err := s.launch(o); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// launch writes the configuration and keys and starts sshd. On error the
// caller cleans up with Close.
func (s *Server) launch(o options) error {
	// The directory is ours rather than t.TempDir: sshd reads authorized_keys
	// as User, who must be able to reach it, and the testing package makes
	// its directories private to root.
	var err error
	s.dir, err = os.MkdirTemp("", "sshdtest-")
	if err != nil {
		return fmt.Errorf("sshdtest: %w", err)
	}
	if err := os.Chmod(s.dir, 0o711); err != nil {
		return fmt.Errorf("sshdtest: %w", err)
	}
	s.logPath = filepath.Join(s.dir, "sshd.log")

	var (
		wg                 sync.WaitGroup
		hostErr, clientErr error
		authorized         []byte
	)
	wg.Add(1)
	go func() { // Client keys are generated once per process; overlap it with the host keys.
		defer wg.Done()
		var ck *clientKeySet
		ck, clientErr = loadClientKeys()
		if clientErr == nil {
			authorized = ck.authorized
		}
	}()
	var hostKeyFiles []string
	s.HostKeys, hostKeyFiles, hostErr = generateHostKeys(s.dir)
	wg.Wait()
	if hostErr != nil {
		return fmt.Errorf("sshdtest: host keys: %w", hostErr)
	}
	if clientErr != nil {
		return fmt.Errorf("sshdtest: client keys: %w", clientErr)
	}
	authKeys := filepath.Join(s.dir, "authorized_keys")
	if err := os.WriteFile(authKeys, authorized, 0o644); err != nil {
		return fmt.Errorf("sshdtest: %w", err)
	}
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil { // privilege separation directory
		return fmt.Errorf("sshdtest: %w", err)
	}

	for attempt := 1; ; attempt++ {
		port, err := freePort()
		if err != nil {
			return fmt.Errorf("sshdtest: pick a port: %w", err)
		}
		cfg := filepath.Join(s.dir, "sshd_config")
		if err := os.WriteFile(cfg, s.config(port, hostKeyFiles, authKeys, o.config), 0o644); err != nil {
			return fmt.Errorf("sshdtest: %w", err)
		}
		d, err := s.run(cfg, port)
		if err == nil {
			s.sshd = d
			s.Port = port
			s.Addr = net.JoinHostPort(s.Host, strconv.Itoa(port))
			break
		}
		log, _ := os.ReadFile(s.logPath)
		if errors.Is(err, errExited) && bytes.Contains(log, []byte("Address already in use")) && attempt < bindAttempts {
			continue // another process took the port between our check and sshd's bind
		}
		return fmt.Errorf("sshdtest: start sshd: %w; sshd said:\n%s", err, log)
	}
	// The readiness probe's connection left a child behind for a moment; wait
	// for it so that Children starts at zero.
	if err := s.WaitNoChildren(startTimeout); err != nil {
		log, _ := os.ReadFile(s.logPath)
		return fmt.Errorf("sshdtest: after start: %w; sshd said:\n%s", err, log)
	}
	return nil
}

// errExited says sshd stopped before it was ready.
var errExited = errors.New("sshd exited")

// daemon is a started sshd listener.
type daemon struct {
	cmd     *exec.Cmd
	done    chan struct{} // closed when cmd has exited
	waitErr error         // cmd.Wait's result, set before done is closed
}

// run starts sshd with the config and waits until it answers on port. On
// failure sshd is not running.
func (s *Server) run(cfg string, port int) (*daemon, error) {
	logFile, err := os.OpenFile(s.logPath, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // sshd holds its own descriptor
	cmd := exec.Command(sshdPath, "-D", "-e", "-f", cfg)
	cmd.Stderr = logFile
	// If the test binary dies without its cleanups (a timeout panic), the
	// listener goes too; sessions end when their client connections close.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	d := &daemon{cmd: cmd, done: make(chan struct{})}
	go func() { // Ends when sshd exits; cleanup makes sure it does.
		d.waitErr = cmd.Wait()
		close(d.done)
	}()

	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(startTimeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if banner(addr) {
			return d, nil
		}
		if time.Now().After(deadline) {
			d.stop()
			return nil, fmt.Errorf("no SSH banner on %s within %v", addr, startTimeout)
		}
		select {
		case <-d.done:
			return nil, fmt.Errorf("%w: %v", errExited, d.waitErr)
		case <-tick.C:
		}
	}
}

// banner reports whether addr accepts a connection and greets with an SSH
// identification string. sshd has no readiness notification to wait on.
func banner(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "SSH-2.0-") {
		return false
	}
	// Answer in kind, or sshd logs the probe as an error.
	_, _ = c.Write([]byte("SSH-2.0-sshdtest-probe\r\n"))
	return true
}

// config renders sshd_config.
func (s *Server) config(port int, hostKeys []string, authKeys string, extra []string) []byte {
	var head, tail []string
	for i, l := range extra {
		if f := strings.Fields(l); len(f) > 0 && strings.EqualFold(f[0], "Match") {
			tail = extra[i:]
			break
		}
		head = append(head, l)
	}
	var b bytes.Buffer
	line := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	line("# Written by sshdtest. sshd keeps the first value read for most keywords.")
	for _, l := range head {
		line("%s", l)
	}
	line("ListenAddress 127.0.0.1:%d", port)
	for _, k := range hostKeys {
		line("HostKey %s", k)
	}
	line("AuthorizedKeysFile %s", authKeys)
	line("StrictModes no")
	line("UsePAM no")
	line("PasswordAuthentication yes")
	line("PermitEmptyPasswords no")
	line("KbdInteractiveAuthentication no")
	line("PubkeyAuthentication yes")
	line("PermitRootLogin no")
	line("AllowUsers %s", s.User)
	line("PrintMotd no")
	line("PrintLastLog no")
	line("PidFile %s", filepath.Join(s.dir, "sshd.pid"))
	line("MaxStartups 2000")
	line("MaxSessions 1000")
	line("MaxAuthTries 10")
	line("LoginGraceTime 30")
	line("UseDNS no")
	line("LogLevel ERROR")
	// SFTP as sshd serves it in process (no sftp-server path to find), unless
	// the caller set its own: sshd refuses a subsystem defined twice.
	if !hasKeyword(head, "Subsystem") {
		line("Subsystem sftp internal-sftp")
	}
	if penalties() {
		// OpenSSH 9.8 and later refuse a source address for a while after
		// failed logins; tests fail logins on purpose, all from 127.0.0.1.
		line("PerSourcePenalties no")
	}
	for _, l := range tail {
		line("%s", l)
	}
	return b.Bytes()
}

// hasKeyword reports whether one of lines sets keyword (case-insensitive).
func hasKeyword(lines []string, keyword string) bool {
	for _, l := range lines {
		if f := strings.Fields(l); len(f) > 0 && strings.EqualFold(f[0], keyword) {
			return true
		}
	}
	return false
}

// Children returns the number of live processes descending from the sshd
// listener: each connection has one or more (the per-connection monitor, the
// unprivileged child, the shell and what it runs). Zombies are not counted.
func (s *Server) Children() int {
	return len(s.descendants())
}

// WaitNoChildren waits until Children is 0, polling /proc, and returns an
// error naming the processes left when timeout passes first.
func (s *Server) WaitNoChildren(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		left := s.descendants()
		if len(left) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			names := make([]string, len(left))
			for i, p := range left {
				names[i] = p.String()
			}
			return fmt.Errorf("sshdtest: %d sshd process(es) still alive after %v: %s",
				len(left), timeout, strings.Join(names, "; "))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Log returns what sshd has written to its standard error so far (its
// log, at LogLevel ERROR unless WithConfig says otherwise). After Close it
// returns nil.
func (s *Server) Log() []byte {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if s.removed || s.logPath == "" {
		return nil
	}
	b, _ := os.ReadFile(s.logPath)
	return b
}

// KnownHosts returns known_hosts lines for every host key of the server, as
// an OpenSSH client would write them ("[127.0.0.1]:port ssh-ed25519 AAAA...").
func (s *Server) KnownHosts() []byte {
	var b bytes.Buffer
	for _, k := range s.HostKeys {
		b.WriteString(knownhosts.Line([]string{s.Addr}, k))
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// Key returns a client private key of the given kind that is authorized for
// User. The kinds (see KeyKinds): "rsa-pem" (PKCS#1 "RSA PRIVATE KEY"),
// "rsa-pkcs8" ("PRIVATE KEY"), "rsa-openssh" ("OPENSSH PRIVATE KEY"),
// "ecdsa-pem" ("EC PRIVATE KEY"), "ecdsa-pkcs8", "ecdsa-openssh",
// "ed25519-pkcs8", "ed25519-openssh". None has a passphrase. The kinds of one
// algorithm encode the same key (RSA 3072, ECDSA P-256). An unknown kind fails
// the test. The result is a copy.
func (s *Server) Key(t testing.TB, kind string) []byte {
	t.Helper()
	ck, err := loadClientKeys()
	if err != nil {
		t.Fatalf("sshdtest: client keys: %v", err)
	}
	k, ok := ck.keys[kind]
	if !ok {
		t.Fatalf("sshdtest: unknown key kind %q, want one of %v", kind, KeyKinds())
	}
	return bytes.Clone(k)
}

// cleanup runs in t.Cleanup: fail the test on a leaked session, stop
// everything, print sshd's log if the test failed, remove the directory.
func (s *Server) cleanup(t testing.TB) {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if err := s.stop(); err != nil {
		t.Errorf("sshdtest: an SSH session leaked: %v", err)
	}
	if t.Failed() && s.logPath != "" {
		if log, err := os.ReadFile(s.logPath); err == nil && len(log) > 0 {
			t.Logf("sshdtest: sshd log:\n%s", log)
		}
	}
	if err := s.removeDir(); err != nil {
		t.Errorf("sshdtest: %v", err)
	}
	s.account.release()
}

// Close stops sshd and every session it still runs, removes the temporary
// directory and gives up the test account. It first waits a few seconds for
// live sessions to end, and reports the ones that had not (an SSH session
// leaked) in its error, after stopping them. Safe to call more than once;
// later calls return nil.
func (s *Server) Close() error {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	var errs []error
	if err := s.stop(); err != nil {
		errs = append(errs, fmt.Errorf("sshdtest: an SSH session leaked: %w", err))
	}
	if err := s.removeDir(); err != nil {
		errs = append(errs, fmt.Errorf("sshdtest: %w", err))
	}
	s.account.release()
	return errors.Join(errs...)
}

// stop waits for live sessions to end, up to leakTimeout, then stops sshd
// and everything below it. It returns the error of the wait: the sessions
// that had not ended. Later calls do nothing.
func (s *Server) stop() error {
	if s.sshd == nil || s.stopped {
		return nil
	}
	s.stopped = true
	err := s.WaitNoChildren(leakTimeout)
	s.sshd.stop()
	return err
}

// removeDir removes the temporary directory. Later calls do nothing.
func (s *Server) removeDir() error {
	if s.dir == "" || s.removed {
		return nil
	}
	s.removed = true
	return os.RemoveAll(s.dir)
}

// stop ends every descendant of sshd, then sshd itself, and waits for it.
func (d *daemon) stop() {
	// Snapshot first: a process whose parent dies is re-parented to init and
	// no longer found below sshd. Depth 1 is a connection's monitor, 2 its
	// unprivileged or session process, 3 and below the user's processes.
	snapshot := d.descendants()
	for i := len(snapshot) - 1; i >= 0; i-- {
		if snapshot[i].depth >= 3 {
			_ = syscall.Kill(snapshot[i].pid, syscall.SIGKILL)
		}
	}
	// A monitor passes SIGTERM on to its session process; both then end
	// the usual way and are reaped by their parents.
	for _, p := range snapshot {
		if p.depth == 1 {
			_ = syscall.Kill(p.pid, syscall.SIGTERM)
		}
	}
	left := func() []proc { return append(alive(snapshot), d.descendants()...) }
	for i := 0; i < 10; i++ {
		deadline := time.Now().Add(2 * time.Second)
		for len(left()) > 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		l := left()
		if len(l) == 0 {
			break
		}
		for j := len(l) - 1; j >= 0; j-- {
			_ = syscall.Kill(l[j].pid, syscall.SIGKILL)
		}
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(stopTimeout):
		_ = d.cmd.Process.Kill()
		<-d.done
	}
}

// descendants lists the live processes below the listener, none once it
// has exited.
func (d *daemon) descendants() []proc {
	select {
	case <-d.done:
		return nil
	default:
		return descendants(d.cmd.Process.Pid)
	}
}

func (s *Server) descendants() []proc {
	if s.sshd == nil {
		return nil
	}
	return s.sshd.descendants()
}

// unavailable returns why sshd cannot run here, or "".
func unavailable() string {
	if os.Geteuid() != 0 {
		return "sshdtest: sshd needs root (it checks passwords and switches users)"
	}
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		return "sshdtest: needs Linux /proc"
	}
	if fi, err := os.Stat(sshdPath); err != nil || fi.IsDir() {
		return "sshdtest: no " + sshdPath + " (install openssh-server)"
	}
	for _, tool := range []string{"ssh-keygen", "useradd", "chpasswd"} {
		if lookTool(tool) == "" {
			return "sshdtest: no " + tool + " in PATH"
		}
	}
	if _, err := lookupUser("sshd"); err != nil {
		return "sshdtest: no privilege separation user sshd (install openssh-server)"
	}
	return ""
}

// lookTool finds an administration tool, which may live in /usr/sbin even
// when that is not in PATH.
func lookTool(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/bin"} {
		if p := filepath.Join(dir, name); isExecutable(p) {
			return p
		}
	}
	return ""
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

var sshdVersion struct {
	once         sync.Once
	major, minor int
}

// penalties reports whether sshd has PerSourcePenalties (OpenSSH 9.8+).
func penalties() bool {
	v := &sshdVersion
	v.once.Do(func() {
		// -V prints the version; versions without it print usage with the
		// version in it. Either way the exit status is of no interest.
		out, _ := exec.Command(sshdPath, "-V").CombinedOutput()
		m := regexp.MustCompile(`OpenSSH_(\d+)\.(\d+)`).FindSubmatch(out)
		if m != nil {
			v.major, _ = strconv.Atoi(string(m[1]))
			v.minor, _ = strconv.Atoi(string(m[2]))
		}
	})
	return v.major > 9 || v.major == 9 && v.minor >= 8
}
