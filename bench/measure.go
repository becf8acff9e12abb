package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// keyTimeout bounds the wait for one echo or one prompt.
	keyTimeout = 15 * time.Second
	// lineKeys is how many keys go on one comment line before Enter: with
	// the "#" and the 15-column prompt the line stays under 80 columns, so
	// readline never wraps and each key's echo is the key alone.
	lineKeys = 60
	// maxPause is the longest random pause between keys.
	maxPause = 2 * time.Millisecond
)

// typist types into one terminal, one key at a time, on bash comment lines
// ("#abc...", ignored on Enter), waiting for each key's echo.
type typist struct {
	t       terminal
	col     int  // keys on the current line
	started bool // a comment line is open
}

// key types c after a random pause and returns the time until its echo
// arrived.
func (k *typist) key(ctx context.Context, rng *rand.Rand, c byte) (time.Duration, error) {
	out := k.t.output()
	if !k.started || k.col == lineKeys {
		if k.started {
			if err := enter(ctx, k.t); err != nil {
				return 0, err
			}
		}
		out.discard()
		if err := k.t.send("#"); err != nil {
			return 0, err
		}
		if _, err := out.waitForByte(ctx, keyTimeout, '#'); err != nil {
			return 0, err
		}
		k.started, k.col = true, 0
	}
	time.Sleep(rand.N(maxPause))
	t0 := time.Now()
	if err := k.t.send(string([]byte{c})); err != nil {
		return 0, err
	}
	at, err := out.waitForByte(ctx, keyTimeout, c)
	if err != nil {
		return 0, err
	}
	k.col++
	return at.Sub(t0), nil
}

// finish ends the open comment line, leaving the shell at its prompt.
func (k *typist) finish(ctx context.Context) error {
	if !k.started {
		return nil
	}
	k.started = false
	return enter(ctx, k.t)
}

// enter presses Enter and waits for the next prompt.
func enter(ctx context.Context, t terminal) error {
	if err := t.send("\r"); err != nil {
		return err
	}
	_, err := t.output().waitForString(ctx, keyTimeout, prompt)
	return err
}

// randomKey is a lower-case letter: no terminal sequence the shell could
// print after an echo holds one.
func randomKey(rng *rand.Rand) byte { return byte('a' + rng.IntN(26)) }

// typeKeys types n keys into t and returns their echo times.
func typeKeys(ctx context.Context, t terminal, n int, rng *rand.Rand) ([]time.Duration, error) {
	k := &typist{t: t}
	lat := make([]time.Duration, 0, n)
	for range n {
		d, err := k.key(ctx, rng, randomKey(rng))
		if err != nil {
			return lat, err
		}
		lat = append(lat, d)
	}
	return lat, k.finish(ctx)
}

// outputRun is one "print a big file" measurement.
type outputRun struct {
	Bytes         int     `json:"bytes"` // received, as the PTY sends it (CRLF line ends)
	Seconds       float64 `json:"seconds"`
	MBps          float64 `json:"mb_per_s"` // 10^6 bytes per second
	ClientCPU     float64 `json:"client_cpu_s"`
	GatewayCPU    float64 `json:"gateway_cpu_s,omitempty"`
	GatewayCPUPMB float64 `json:"gateway_cpu_s_per_mb,omitempty"`
	MachineBusy   float64 `json:"machine_busy"` // share of all CPUs busy, 0..1
}

// verifier checks a terminal's output against the expected bytes as it
// arrives: first the echo of the command up to its CRLF, then exactly want.
type verifier struct {
	want  []byte
	pre   []byte // output before the command's CRLF
	off   int    // bytes of want matched so far
	phase int    // 0: command echo, 1: content, 2: done
	err   error
	last  time.Time
	done  chan struct{}
}

func (v *verifier) feed(p []byte, at time.Time) ([]byte, bool) {
	if v.phase == 0 {
		v.pre = append(v.pre, p...)
		i := bytes.Index(v.pre, []byte("\r\n"))
		if i < 0 {
			return nil, false
		}
		p, v.pre, v.phase = v.pre[i+2:], nil, 1
	}
	n := min(len(p), len(v.want)-v.off)
	if !bytes.Equal(p[:n], v.want[v.off:v.off+n]) {
		i := 0
		for p[i] == v.want[v.off+i] {
			i++
		}
		lo, hi := max(0, v.off+i-20), min(len(v.want), v.off+i+20)
		v.err = fmt.Errorf("output differs at byte %d of %d: got %q, want %q",
			v.off+i, len(v.want), p[max(0, i-20):min(n, i+20)], v.want[lo:hi])
		v.phase = 2
		close(v.done)
		return nil, true
	}
	v.off += n
	if v.off < len(v.want) {
		return nil, false
	}
	v.phase, v.last = 2, at
	close(v.done)
	return p[n:], true
}

// printFile runs "cat path" in t (at its prompt), verifies every byte of
// the output against want, and leaves the shell at its prompt.
func printFile(ctx context.Context, t terminal, path string, want []byte, gatewayPID int) (outputRun, error) {
	out := t.output()
	v := &verifier{want: want, done: make(chan struct{})}
	out.setTap(v.feed)
	var gw0 time.Duration
	if gatewayPID > 0 {
		gw0, _ = procCPU(gatewayPID)
	}
	self0, m0 := selfCPU(), readMachineCPU()
	t0 := time.Now()
	if err := t.send("cat " + path + "\r"); err != nil {
		out.clearTap()
		return outputRun{}, err
	}
	// Generous: 1 MB/s is 30 times slower than the Flask server's cap.
	limit := time.Duration(len(want)/1e6+30) * time.Second
	timer := time.NewTimer(limit)
	defer timer.Stop()
	select {
	case <-v.done:
	case <-timer.C:
		out.clearTap()
		return outputRun{}, fmt.Errorf("output not complete after %v", limit)
	case <-ctx.Done():
		out.clearTap()
		return outputRun{}, ctx.Err()
	}
	if v.err != nil {
		return outputRun{}, v.err
	}
	r := outputRun{
		Bytes:       len(want),
		Seconds:     v.last.Sub(t0).Seconds(),
		ClientCPU:   (selfCPU() - self0).Seconds(),
		MachineBusy: m0.busySince(),
	}
	r.MBps = float64(r.Bytes) / 1e6 / r.Seconds
	if gatewayPID > 0 {
		gw1, _ := procCPU(gatewayPID)
		r.GatewayCPU = (gw1 - gw0).Seconds()
		r.GatewayCPUPMB = r.GatewayCPU / (float64(r.Bytes) / 1e6)
	}
	if _, err := out.waitForString(ctx, keyTimeout, prompt); err != nil {
		return r, fmt.Errorf("after the output: %w", err)
	}
	return r, nil
}

// flood makes t print the file over and over, discarding it, until it is
// closed; it returns a counter of the bytes received.
func flood(ctx context.Context, t terminal, path string) (*atomic.Int64, error) {
	var n atomic.Int64
	t.output().setTap(func(p []byte, _ time.Time) ([]byte, bool) {
		n.Add(int64(len(p)))
		return nil, false
	})
	if err := t.send("while :; do cat " + path + "; done\r"); err != nil {
		return nil, err
	}
	// Wait until the flood is under way.
	deadline := time.Now().Add(keyTimeout)
	for n.Load() < 1<<20 {
		if time.Now().After(deadline) {
			return nil, errors.New("flood did not start")
		}
		select {
		case <-time.After(10 * time.Millisecond):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return &n, nil
}

// silentHost accepts TCP connections and never says a word.
type silentHost struct {
	ln       net.Listener
	accepted chan struct{} // one value per accepted connection (buffered)
	mu       sync.Mutex
	conns    []net.Conn
}

func newSilentHost() (*silentHost, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	h := &silentHost{ln: ln, accepted: make(chan struct{}, 100)}
	go func() { // ends when close closes the listener
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			h.mu.Lock()
			h.conns = append(h.conns, c)
			h.mu.Unlock()
			select {
			case h.accepted <- struct{}{}:
			default:
			}
		}
	}()
	return h, nil
}

func (h *silentHost) port() int { return h.ln.Addr().(*net.TCPAddr).Port }

func (h *silentHost) close() {
	h.ln.Close()
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.conns {
		c.Close()
	}
	h.conns = nil
}

// openMany opens n terminals, at most inFlight at a time (all at once when
// n <= inFlight), and waits for all their prompts. It returns the terminals
// that worked (nil entries for the others), the time until the last
// prompt, and the errors.
func openMany(ctx context.Context, n, inFlight int, timeout time.Duration, open func(context.Context) (terminal, error)) ([]terminal, time.Duration, []error) {
	terms := make([]terminal, n)
	errs := make([]error, n)
	done := make([]time.Time, n)
	slots := make(chan struct{}, inFlight)
	start := time.Now()
	var wg sync.WaitGroup
	for i := range n {
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			octx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			t, err := open(octx)
			if err == nil {
				if _, err = t.output().waitForString(octx, timeout, prompt); err != nil {
					t.close()
				}
			}
			if err != nil {
				errs[i] = err
				return
			}
			terms[i], done[i] = t, time.Now()
		})
	}
	wg.Wait()
	var last time.Time
	var failed []error
	for i := range n {
		if errs[i] != nil {
			failed = append(failed, errs[i])
			continue
		}
		if done[i].After(last) {
			last = done[i]
		}
	}
	return terms, last.Sub(start), failed
}

// echoAcross types keys one at a time, each into a terminal taken in a
// shuffled round-robin over terms, so that every terminal echoes at least
// once when keys >= len(terms). It returns the echo times and how many
// terminals echoed every key they got.
func echoAcross(ctx context.Context, terms []terminal, keys int, rng *rand.Rand) ([]time.Duration, int, []error) {
	var live []*typist
	for _, t := range terms {
		if t != nil {
			live = append(live, &typist{t: t})
		}
	}
	if len(live) == 0 {
		return nil, 0, nil
	}
	broken := make(map[*typist]bool)
	var errs []error
	lat := make([]time.Duration, 0, keys)
	order := rng.Perm(len(live))
	for i := 0; i < keys; i++ {
		if i > 0 && i%len(live) == 0 {
			order = rng.Perm(len(live))
		}
		k := live[order[i%len(live)]]
		if broken[k] {
			continue
		}
		d, err := k.key(ctx, rng, randomKey(rng))
		if err != nil {
			if ctx.Err() != nil {
				return lat, 0, append(errs, ctx.Err())
			}
			broken[k] = true
			errs = append(errs, err)
			continue
		}
		lat = append(lat, d)
	}
	return lat, len(live) - len(broken), errs
}

// closeAll closes terminals concurrently.
func closeAll(terms []terminal) {
	var wg sync.WaitGroup
	for _, t := range terms {
		if t != nil {
			wg.Go(t.close)
		}
	}
	wg.Wait()
}
