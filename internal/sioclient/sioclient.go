// Package sioclient runs e2e/client.mjs, the real socket.io-client from npm
// driven by a JSON scenario, for the Go tests of the server and e2e
// packages. Its types are that script's input and output, whose contract is
// the header of e2e/client.mjs (e2e/pyclient.py speaks a subset of it).
//
// Nothing here takes a testing.TB, so a scenario may run on any goroutine;
// the test packages wrap it with their own skip and fail rules.
package sioclient

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Script is the Node client's file name in the e2e directory.
const Script = "client.mjs"

// DefaultTimeoutMs is the overall deadline a scenario gets when it sets
// none; client.mjs uses the same default.
const DefaultTimeoutMs = 30000

// slack is how long past a scenario's own deadline the script may take
// before it is killed.
const slack = 30 * time.Second

// Scenario is the input of client.mjs. Zero fields are left out, so the
// script's defaults apply (and, in many mode, those of the defaults
// scenario).
type Scenario struct {
	URL               string         `json:"url,omitempty"`
	Path              string         `json:"path,omitempty"`
	Client            string         `json:"client,omitempty"`
	Transports        []string       `json:"transports,omitempty"`
	Start             map[string]any `json:"start,omitempty"`
	ResizeBeforeStart map[string]int `json:"resizeBeforeStart,omitempty"`
	Steps             []Step         `json:"steps,omitempty"`
	// WaitReady nil is the script's default, true.
	WaitReady *bool `json:"waitReady,omitempty"`
	WaitEnd   bool  `json:"waitEnd,omitempty"`
	TimeoutMs int   `json:"timeoutMs,omitempty"`
}

// Step is one step of a Scenario; set the fields of one kind only.
type Step struct {
	Send      string `json:"send,omitempty"`
	Expect    string `json:"expect,omitempty"`
	TimeoutMs int    `json:"timeoutMs,omitempty"`
	Emit      string `json:"emit,omitempty"`
	Data      any    `json:"data,omitempty"`
	SendBytes int    `json:"sendBytes,omitempty"`
	Seed      int    `json:"seed,omitempty"`
	WaitMs    int    `json:"waitMs,omitempty"`
}

// Result is the output of client.mjs for one scenario.
type Result struct {
	Connected bool `json:"connected"`
	Ready     bool `json:"ready"`
	// ReadyKeys are the keys of connection-ready's payload, sorted.
	ReadyKeys    []string `json:"readyKeys"`
	Transport    string   `json:"transport"`
	Output       string   `json:"output"`
	OutputEvents int      `json:"outputEvents"`
	BinaryEvents int      `json:"binaryEvents"`
	Closing      *struct {
		Output  string `json:"output"`
		Timeout bool   `json:"timeout"`
	} `json:"closing"`
	DisconnectReason string          `json:"disconnectReason"`
	Events           []string        `json:"events"`
	FailedStep       json.RawMessage `json:"failedStep"`
	Error            *string         `json:"error"`
	ProtocolErrors   []string        `json:"protocolErrors"`
	SentSha256       string          `json:"sentSha256"`
	ElapsedMs        int             `json:"elapsedMs"`
}

// Problem is what went wrong in the client's own words, or "".
func (r *Result) Problem() string {
	switch {
	case r.Error != nil:
		return "client error: " + *r.Error
	case len(r.ProtocolErrors) > 0:
		return fmt.Sprintf("protocol errors: %q", r.ProtocolErrors)
	case len(r.FailedStep) > 0 && string(r.FailedStep) != "null":
		msg := "failed step: " + string(r.FailedStep)
		if r.Closing != nil {
			msg += fmt.Sprintf("; closing message %q", r.Closing.Output)
		}
		return msg
	}
	return ""
}

// Bool returns a pointer to v, for Scenario.WaitReady.
func Bool(v bool) *bool { return &v }

// Deadline is how long a script running a scenario with timeoutMs (0: the
// default) may take in all.
func Deadline(timeoutMs int) time.Duration {
	if timeoutMs == 0 {
		timeoutMs = DefaultTimeoutMs
	}
	return time.Duration(timeoutMs)*time.Millisecond + slack
}

// Run runs one scenario with client.mjs from dir, the e2e directory with
// its node_modules. A zero TimeoutMs is sent as DefaultTimeoutMs.
func Run(dir string, sc Scenario) (*Result, error) {
	if sc.TimeoutMs == 0 {
		sc.TimeoutMs = DefaultTimeoutMs
	}
	var r Result
	if err := Exec(Deadline(sc.TimeoutMs), sc, &r, "node", filepath.Join(dir, Script)); err != nil {
		return nil, err
	}
	return &r, nil
}

// RunMany runs many scenarios at once in one Node process (client.mjs's
// many mode), each merged over defaults, and returns their results in
// order and the time the client took. A zero defaults.TimeoutMs is sent as
// DefaultTimeoutMs.
func RunMany(dir string, defaults Scenario, scs []Scenario) ([]Result, time.Duration, error) {
	if defaults.TimeoutMs == 0 {
		defaults.TimeoutMs = DefaultTimeoutMs
	}
	var out struct {
		Results   []Result `json:"results"`
		ElapsedMs int      `json:"elapsedMs"`
		Error     *string  `json:"error"`
	}
	in := map[string]any{"defaults": defaults, "scenarios": scs}
	if err := Exec(Deadline(defaults.TimeoutMs), in, &out, "node", filepath.Join(dir, Script)); err != nil {
		return nil, 0, err
	}
	if out.Error != nil || len(out.Results) != len(scs) {
		return nil, 0, fmt.Errorf("%s: got %d results (error %v), want %d", Script, len(out.Results), out.Error, len(scs))
	}
	return out.Results, time.Duration(out.ElapsedMs) * time.Millisecond, nil
}

// Exec runs a client script (name and args) with in as JSON on its stdin,
// killing it after timeout, and decodes the JSON line it prints into out.
func Exec(timeout time.Duration, in, out any, name string, args ...string) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = bytes.NewReader(b)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %v\nstderr: %s", strings.Join(cmd.Args, " "), err, stderr.String())
	}
	if err := json.Unmarshal(stdout.Bytes(), out); err != nil {
		return fmt.Errorf("%s printed %q: %v\nstderr: %s", strings.Join(cmd.Args, " "), truncate(stdout.String(), 500), err, stderr.String())
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
