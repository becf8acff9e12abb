package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"
)

// The flooding neighbour of the isolation phase runs in a process of its
// own, as another user's browser would: its client's work then does not
// share a Go runtime (scheduler, garbage collector) with the client whose
// echo is measured; only the machine's CPUs. The bench re-executes itself
// with floodEnv set to a JSON floodConfig.
const floodEnv = "ALFRESCO_BENCH_FLOOD"

// floodConfig tells a flood process what to flood through.
type floodConfig struct {
	Side       string `json:"side"`        // "direct" or "gateway"
	GatewayURL string `json:"gateway_url"` // for "gateway"
	Host       string `json:"host"`
	Port       int    `json:"port"`
	User       string `json:"user"`
	Password   string `json:"password"`
	Path       string `json:"path"` // the file printed over and over
}

// floodMain opens a terminal, makes it print the file over and over,
// prints "flooding" once the flood is under way, and discards the output
// until its stdin closes; then it prints "<bytes> <seconds>" received since
// "flooding", and exits.
func floodMain(raw string) int {
	var fc floodConfig
	if err := json.Unmarshal([]byte(raw), &fc); err != nil {
		fmt.Fprintln(os.Stderr, "bench flood: bad config:", err)
		return 2
	}
	ctx := context.Background()
	l := login{host: fc.Host, port: fc.Port, user: fc.User, password: fc.Password}
	var t terminal
	var err error
	if fc.Side == "gateway" {
		t, err = openGateway(ctx, fc.GatewayURL, l, keyTimeout)
	} else {
		t, err = dialDirect(ctx, l)
	}
	if err == nil {
		_, err = t.output().waitForString(ctx, keyTimeout, prompt)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench flood:", err)
		return 1
	}
	defer t.close()
	count, err := flood(ctx, t, fc.Path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench flood:", err)
		return 1
	}
	c0, t0 := count.Load(), time.Now()
	fmt.Println("flooding")
	io.Copy(io.Discard, os.Stdin)
	fmt.Printf("%d %f\n", count.Load()-c0, time.Since(t0).Seconds())
	return 0
}

// floodProc is a running flood process, seen from the parent.
type floodProc struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *bufio.Reader
}

// startFlood starts a flood process and waits until its flood is under way.
func startFlood(ctx context.Context, fc floodConfig) (*floodProc, error) {
	cmd, stdin, stdout, err := startSelf(floodEnv, fc, nil, os.Stderr)
	if err != nil {
		return nil, err
	}
	f := &floodProc{cmd: cmd, stdin: stdin, stdout: bufio.NewReader(stdout)}
	line := make(chan string, 1)
	go func() {
		s, _ := f.stdout.ReadString('\n')
		line <- s
	}()
	select {
	case s := <-line:
		if strings.TrimSpace(s) == "flooding" {
			return f, nil
		}
	case <-time.After(2 * keyTimeout):
	case <-ctx.Done():
	}
	cmd.Process.Kill()
	cmd.Wait()
	return nil, fmt.Errorf("%s flood process did not start", fc.Side)
}

// stop ends the flood and returns its rate since it was under way, in MB/s.
func (f *floodProc) stop() (float64, error) {
	f.stdin.Close()
	var n int64
	var secs float64
	_, serr := fmt.Fscan(f.stdout, &n, &secs)
	if err := f.cmd.Wait(); err != nil {
		return 0, fmt.Errorf("flood process: %w", err)
	}
	if serr != nil || secs <= 0 {
		return 0, fmt.Errorf("flood process: no report: %v", serr)
	}
	return float64(n) / 1e6 / secs, nil
}
