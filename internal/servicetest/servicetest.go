// Package servicetest runs real Debian services for tests, each on a free
// loopback port and in a temporary directory of its own: redis-server
// (StartRedis) and nginx (StartNginx). They are stopped in t.Cleanup; a
// missing binary skips the test, or fails it when CI is "true".
//
// Concurrency: each service belongs to the test that started it; its
// methods are safe to call from that test's goroutines.
package servicetest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// startTimeout bounds how long a service may take to answer on its port.
const startTimeout = 20 * time.Second

// process is one started service process.
type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
	err  error         // cmd.Wait's result, set before done is closed
}

// launch starts cmd and waits until ready reports true, polling it. On
// failure the process is not running and the error holds what log (its
// log file) says.
func launch(cmd *exec.Cmd, ready func() bool, log string) (*process, error) {
	// If the test binary dies without its cleanups, the service goes too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() { // Ends when the process exits; stop makes sure it does.
		p.err = cmd.Wait()
		close(p.done)
	}()
	deadline := time.Now().Add(startTimeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !ready() {
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("%s not ready within %v; log:\n%s", cmd.Path, startTimeout, readLog(log))
		}
		select {
		case <-p.done:
			return nil, fmt.Errorf("%w: %v; log:\n%s", errExited, p.err, readLog(log))
		case <-tick.C:
		}
	}
	return p, nil
}

var errExited = errors.New("exited before it was ready")

// stop ends the process with SIGTERM (SIGKILL after a grace) and waits.
func (p *process) stop() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

func readLog(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

// serviceDir is a fresh directory that workers dropping privileges (nginx
// runs them as nobody when started as root) can enter, removed when the
// test ends.
func serviceDir(t testing.TB, name string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", name+"-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// lookBinary finds a service binary, skipping the test (failing it with
// CI=true) when it is missing.
func lookBinary(t testing.TB, name, pkg string) string {
	t.Helper()
	for _, p := range []string{name, "/usr/sbin/" + name, "/usr/bin/" + name} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	msg := fmt.Sprintf("servicetest: no %s (install Debian's %s)", name, pkg)
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s (CI=true: not skipping)", msg)
	}
	t.Skip(msg)
	return ""
}

// startOnFreePort runs start on a free port, trying another when the one
// picked was taken in the meantime.
func startOnFreePort(t testing.TB, start func(port int) (*process, error)) (*process, int) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		port := freePort(t)
		p, err := start(port)
		if err == nil {
			return p, port
		}
		if !errors.Is(err, errExited) || attempt == 3 {
			t.Fatal(err)
		}
	}
}
