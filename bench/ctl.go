package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// The scale mode's helpers (the light SSH server and the mass of clients)
// run in processes of their own, re-executions of this binary with an
// environment variable set to their JSON configuration. The parent drives
// them over their standard input and output: the child prints one JSON
// line when it is ready, then answers each JSON request line with one JSON
// line, and exits when its standard input closes.

// ctlRequest is a request to a helper process.
type ctlRequest struct {
	Op       string `json:"op"`
	N        int    `json:"n,omitempty"`
	InFlight int    `json:"in_flight,omitempty"`
	Rate     int    `json:"rate,omitempty"`
}

// ctlProc is a running helper process, seen from the parent.
type ctlProc struct {
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
	done  chan struct{} // closed when the process has exited
	err   error         // its exit error, once done

	mu sync.Mutex // one request at a time
}

// startSelf starts this binary as a child process with env set to cfg as
// JSON (and extraEnv added), its standard error going to stderr. The child
// is killed if this process dies.
func startSelf(env string, cfg any, extraEnv []string, stderr io.Writer) (cmd *exec.Cmd, stdin io.WriteCloser, stdout io.ReadCloser, err error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, nil, nil, err
	}
	raw, _ := json.Marshal(cfg)
	cmd = exec.Command(exe)
	cmd.Env = append(append(os.Environ(), extraEnv...), env+"="+string(raw))
	cmd.Stderr = stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if stdin, err = cmd.StdinPipe(); err != nil {
		return nil, nil, nil, err
	}
	if stdout, err = cmd.StdoutPipe(); err != nil {
		return nil, nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, nil, err
	}
	return cmd, stdin, stdout, nil
}

// startCtl starts a helper: this binary with env set to cfg as JSON. Its
// standard error goes to stderr; ready receives its first line.
func startCtl(ctx context.Context, name, env string, cfg any, stderr *os.File, ready any) (*ctlProc, error) {
	cmd, stdin, stdout, err := startSelf(env, cfg, nil, stderr)
	if err != nil {
		return nil, err
	}
	p := &ctlProc{name: name, cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout), done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	if err := p.read(ctx, 30*time.Second, ready); err != nil {
		p.kill()
		return nil, fmt.Errorf("%s did not start: %w", name, err)
	}
	return p, nil
}

func (p *ctlProc) pid() int { return p.cmd.Process.Pid }

// call sends req and decodes the answer into resp; timeout 0 waits as long
// as ctx lets it.
func (p *ctlProc) call(ctx context.Context, timeout time.Duration, req ctlRequest, resp any) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	line, _ := json.Marshal(req)
	if _, err := p.stdin.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("%s: %s: %w", p.name, req.Op, err)
	}
	if err := p.read(ctx, timeout, resp); err != nil {
		return fmt.Errorf("%s: %s: %w", p.name, req.Op, err)
	}
	return nil
}

// read decodes the next line of the child's output into v.
func (p *ctlProc) read(ctx context.Context, timeout time.Duration, v any) error {
	type result struct {
		line []byte
		err  error
	}
	ch := make(chan result, 1)
	go func() { // ends when the child answers or exits
		line, err := p.out.ReadBytes('\n')
		ch <- result{line, err}
	}()
	var expired <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		expired = t.C
	}
	select {
	case r := <-ch:
		if r.err != nil {
			<-p.done
			return fmt.Errorf("no answer (%v; exit: %v)", r.err, p.err)
		}
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(r.line, &e) == nil && e.Error != "" {
			return errors.New(e.Error)
		}
		return json.Unmarshal(r.line, v)
	case <-expired:
		p.kill()
		return fmt.Errorf("no answer within %v; killed", timeout)
	case <-ctx.Done():
		p.kill()
		return ctx.Err()
	}
}

// stop closes the child's standard input and waits for it to exit, killing
// it after timeout.
func (p *ctlProc) stop(timeout time.Duration) error {
	p.stdin.Close()
	select {
	case <-p.done:
		if p.err != nil {
			return fmt.Errorf("%s: %w", p.name, p.err)
		}
		return nil
	case <-time.After(timeout):
		p.kill()
		return fmt.Errorf("%s did not exit within %v; killed", p.name, timeout)
	}
}

func (p *ctlProc) kill() {
	p.cmd.Process.Kill()
	<-p.done
}

// serveCtl is the child's side: it prints ready, then answers every request
// line on standard input with handle's result (or {"error": ...}), until
// standard input closes.
func serveCtl(ready any, handle func(ctlRequest) (any, error)) error {
	enc := json.NewEncoder(os.Stdout)
	if err := enc.Encode(ready); err != nil {
		return err
	}
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		var req ctlRequest
		var resp any
		err := json.Unmarshal(in.Bytes(), &req)
		if err == nil {
			resp, err = handle(req)
		}
		if err != nil {
			resp = map[string]string{"error": err.Error()}
		}
		if err := enc.Encode(resp); err != nil {
			return err
		}
	}
	return in.Err()
}
