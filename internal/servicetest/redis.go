package servicetest

import (
	"bufio"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Redis is a running redis-server with persistence off.
type Redis struct {
	// Addr is "127.0.0.1:port"; URL is "redis://127.0.0.1:port/0".
	Addr, URL string

	t    testing.TB
	bin  string
	dir  string
	port int

	mu   sync.Mutex
	proc *process // nil while stopped
}

// StartRedis starts redis-server for the test and stops it in t.Cleanup.
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	r := &Redis{t: t, bin: lookBinary(t, "redis-server", "redis-server"), dir: serviceDir(t, "redistest")}
	r.proc, r.port = startOnFreePort(t, r.run)
	r.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(r.port))
	r.URL = "redis://" + r.Addr + "/0"
	t.Cleanup(r.Stop)
	return r
}

func (r *Redis) run(port int) (*process, error) {
	log := filepath.Join(r.dir, "redis.log")
	cmd := exec.Command(r.bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--dir", r.dir, "--logfile", log, "--save", "", "--appendonly", "no",
		"--daemonize", "no", "--maxclients", "10000", "--repl-diskless-sync-delay", "0")
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	return launch(cmd, func() bool { return ping(addr) }, log)
}

// ping reports whether addr answers PING with PONG.
func ping(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && line == "+PONG\r\n"
}

// Stop stops the server; its data is gone. Safe to call when stopped.
func (r *Redis) Stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.proc != nil {
		r.proc.stop()
		r.proc = nil
	}
}

// Pause stops the server's process (SIGSTOP), as a Redis that hangs: it
// keeps its connections but answers nothing until Continue.
func (r *Redis) Pause() { r.signal(syscall.SIGSTOP) }

// Continue lets a paused server run again.
func (r *Redis) Continue() { r.signal(syscall.SIGCONT) }

func (r *Redis) signal(sig syscall.Signal) {
	r.t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.proc == nil {
		r.t.Fatal("servicetest: signal to a stopped redis-server")
	}
	if err := r.proc.cmd.Process.Signal(sig); err != nil {
		r.t.Fatal(err)
	}
}

// Restart starts a stopped server again, empty, on the same port.
func (r *Redis) Restart() {
	r.t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.proc != nil {
		r.t.Fatal("servicetest: Restart of a running redis-server")
	}
	p, err := r.run(r.port)
	if err != nil {
		r.t.Fatalf("servicetest: restart redis-server on port %d: %v", r.port, err)
	}
	r.proc = p
}

// CLI runs redis-cli against the server and returns what it printed.
func (r *Redis) CLI(args ...string) ([]byte, error) {
	cmd := exec.Command(filepath.Join(filepath.Dir(r.bin), "redis-cli"), append([]string{"-h", "127.0.0.1", "-p", strconv.Itoa(r.port)}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("redis-cli %v: %w: %s", args, err, out)
	}
	return out, nil
}
