package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"go.uber.org/goleak"

	"github.com/alfresco-ssh/alfresco-ssh/internal/sshdtest"
	"github.com/alfresco-ssh/alfresco-ssh/internal/testdeps"
)

// TestMain lets the test binary play the bench's child processes, which
// re-execute the running binary; as the test, it fails when the tests
// leave goroutines behind.
func TestMain(m *testing.M) {
	if cc := os.Getenv(childEnv); cc != "" {
		os.Exit(gatewayMain(cc))
	}
	if fc := os.Getenv(floodEnv); fc != "" {
		os.Exit(floodMain(fc))
	}
	if sc := os.Getenv(sshServerEnv); sc != "" {
		os.Exit(sshServerMain(sc))
	}
	if cc := os.Getenv(clientsEnv); cc != "" {
		os.Exit(clientsMain(cc))
	}
	// The Go Socket.IO client starts a network monitor for the whole
	// process when it is loaded.
	goleak.VerifyTestMain(testdeps.Main(m), goleak.IgnoreCurrent())
}

// TestQuick runs the whole bench once at its smallest sizes, so that it
// keeps compiling and working. Benchmarks are not tests: nothing here
// asserts a timing.
func TestQuick(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a real sshd and gateway")
	}
	jsonPath := filepath.Join(t.TempDir(), "results.json")
	var stdout, stderr bytes.Buffer
	err := run(t.Context(), []string{"-quick", "-json", jsonPath}, &stdout, &stderr)
	if errors.Is(err, sshdtest.ErrUnavailable) {
		testdeps.Missing(t, err.Error())
	}
	if err != nil {
		t.Fatalf("run -quick: got error %v, want nil\nstdout:\n%s\nstderr:\n%s", err, &stdout, &stderr)
	}
	for _, want := range []string{"| echo p50 (ms)", "| output (MB/s, byte-exact)", "| POST to prompt p50 (ms)",
		"| echo p99 rise, neighbour floods (ms)", "| 5 sessions: working"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("table: got\n%s\nwant a row %q", &stdout, want)
		}
	}
	data, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	var res results
	if err := json.Unmarshal(data, &res); err != nil {
		t.Fatalf("JSON: %v", err)
	}
	if res.Echo == nil || res.Output == nil || res.Prompt == nil || res.Isolation == nil || len(res.Sessions) != 2 {
		t.Fatalf("JSON: got %s, want every phase", data)
	}
	if !strings.HasPrefix(res.Meta.ProtocolCheck, "ok") {
		t.Errorf("protocol check: got %q, want ok", res.Meta.ProtocolCheck)
	}
	if got, want := res.Echo.Runs[0].Gateway.N, 60; got != want {
		t.Errorf("gateway echo samples: got %d, want %d", got, want)
	}
	for _, s := range res.Sessions {
		if s.Direct.Working != s.N || s.Gateway.Working != s.N {
			t.Errorf("%d sessions: got %d direct and %d gateway working, want all (errors %v %v %v %v)",
				s.N, s.Direct.Working, s.Gateway.Working, s.Direct.OpenErrors, s.Gateway.OpenErrors, s.Direct.EchoErrors, s.Gateway.EchoErrors)
		}
		if s.Gateway.Idle.Goroutines <= s.Gateway.Base.Goroutines {
			t.Errorf("%d sessions: gateway goroutines %d idle, %d before: want more with sessions open",
				s.N, s.Gateway.Idle.Goroutines, s.Gateway.Base.Goroutines)
		}
	}
}

// TestScaleQuick runs the scale mode once at a tiny size (its helper
// processes, waves, idle and printing measures) and checks that every
// session opened, stayed open and echoed. It asserts no timing.
func TestScaleQuick(t *testing.T) {
	if testing.Short() {
		t.Skip("runs helper processes")
	}
	jsonPath := filepath.Join(t.TempDir(), "results.json")
	var stdout, stderr bytes.Buffer
	if err := run(t.Context(), []string{"-scale", "12", "-quick", "-json", jsonPath}, &stdout, &stderr); err != nil {
		t.Fatalf("run -scale 12 -quick: got error %v, want nil\nstdout:\n%s\nstderr:\n%s", err, &stdout, &stderr)
	}
	for _, want := range []string{"| sessions live (of 12)", "| gateway RSS per idle session, after GC (KiB)", "| echo p50 / p99 / max, all idle"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("table: got\n%s\nwant a row %q", &stdout, want)
		}
	}
	data, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		Scale scaleModeResult `json:"scale"`
	}
	if err := json.Unmarshal(data, &res); err != nil {
		t.Fatalf("JSON: %v", err)
	}
	s := res.Scale
	if s.Live != 12 || s.OpenFailed != 0 || s.Ended != 0 || len(s.EchoErrors) > 0 {
		t.Errorf("got %d live, %d failed to open, %d ended, echo errors %v; want 12, 0, 0, none (first failure %q, ended %v)",
			s.Live, s.OpenFailed, s.Ended, s.EchoErrors, s.FirstFailure, s.EndedReasons)
	}
	if s.RemoteConns != 12 {
		t.Errorf("light SSH server connections: got %d, want 12", s.RemoteConns)
	}
	if len(s.Waves) != 3 { // the 5 samples, a wave of 6, a last one of 1
		t.Errorf("waves: got %d, want 3: %+v", len(s.Waves), s.Waves)
	}
	if s.EchoIdle.N != 20 || s.EchoPrint.N != 20 || s.PrintSessions != 1 || s.PrintBytes == 0 {
		t.Errorf("echo samples %d idle and %d printing, %d sessions printed %d bytes: want 20, 20, 1 and some",
			s.EchoIdle.N, s.EchoPrint.N, s.PrintSessions, s.PrintBytes)
	}
	if s.GoroutinesAfterClose > s.Base.Goroutines+5 {
		t.Errorf("gateway goroutines after closing: got %d, want at most %d", s.GoroutinesAfterClose, s.Base.Goroutines+5)
	}
}

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		check   func(*config) string
		wantErr string
	}{
		{"defaults", nil, func(c *config) string {
			if c.keys != 1000 || c.outputMB != 100 || c.runs != 3 || !slices.Equal(c.sessions, []int{1, 200, 1000}) || c.jsonPath != "bench-results.json" {
				return "not the full-size defaults"
			}
			return ""
		}, ""},
		{"quick", []string{"-quick"}, func(c *config) string {
			if c.keys != 60 || c.outputMB != 2 || c.runs != 1 || !slices.Equal(c.sessions, []int{1, 5}) || c.jsonPath != "" {
				return "not the quick sizes"
			}
			return ""
		}, ""},
		{"quick with explicit flags", []string{"-quick", "-keys", "7", "-sessions", "3", "-json", "x.json"}, func(c *config) string {
			if c.keys != 7 || !slices.Equal(c.sessions, []int{3}) || c.jsonPath != "x.json" || c.runs != 1 {
				return "explicit flags did not win over -quick"
			}
			return ""
		}, ""},
		{"only", []string{"-only", "echo, sessions"}, func(c *config) string {
			if !c.wants("echo") || !c.wants("sessions") || c.wants("output") {
				return "wrong phases"
			}
			return ""
		}, ""},
		{"gateway env", []string{"-gateway-env", "GOGC=400 GOMAXPROCS=4"}, func(c *config) string {
			if !slices.Equal(c.gatewayEnv, []string{"GOGC=400", "GOMAXPROCS=4"}) {
				return "wrong environment"
			}
			return ""
		}, ""},
		{"scale quick", []string{"-scale", "40", "-quick"}, func(c *config) string {
			if c.scaleN != 40 || c.scaleWave != 20 || c.scaleSamples != 5 || c.scaleKeys != 20 {
				return "not the quick scale sizes"
			}
			return ""
		}, ""},
		{"scale with only", []string{"-scale", "40", "-only", "echo"}, nil, "drop -only"},
		{"scale print share", []string{"-scale", "40", "-scale-print-pct", "101"}, nil, "between 0 and 100"},
		{"unknown phase", []string{"-only", "echo,warp"}, nil, `unknown phase "warp"`},
		{"old scale phase", []string{"-only", "scale", "-scale", "200"}, nil, `is now "sessions"`},
		{"bad sessions", []string{"-sessions", "1,x"}, nil, `"x" is not a positive number`},
		{"zero keys", []string{"-keys", "0"}, nil, "must be positive"},
		{"bad env", []string{"-gateway-env", "GOGC"}, nil, "not NAME=VALUE"},
		{"argument", []string{"extra"}, nil, `unexpected argument "extra"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseFlags(tt.args, &bytes.Buffer{})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseFlags(%q): got error %v, want one containing %q", tt.args, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseFlags(%q): got error %v, want nil", tt.args, err)
			}
			if msg := tt.check(c); msg != "" {
				t.Errorf("parseFlags(%q): %s: got %+v", tt.args, msg, *c)
			}
		})
	}
}

func TestSummarize(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	got := summarize(ds)
	want := latency{N: 100, P50: 50, P90: 90, P99: 99, Max: 100, Mean: 50.5}
	if got != want {
		t.Errorf("summarize(1..100 ms): got %+v, want %+v", got, want)
	}
	if got := summarize(nil); got != (latency{}) {
		t.Errorf("summarize(nil): got %+v, want zero", got)
	}
	if got := median([]float64{3, 1, 2, 10}); got != 2.5 {
		t.Errorf("median: got %v, want 2.5", got)
	}
}

func TestMakeOutput(t *testing.T) {
	for _, size := range []int{1, 100, 1 << 20} {
		file, want := makeOutput(size, 7)
		if len(file) != size {
			t.Errorf("size %d: got %d bytes", size, len(file))
		}
		if !utf8.Valid(file) || file[len(file)-1] != '\n' {
			t.Errorf("size %d: want valid UTF-8 ending in a newline", size)
		}
		if got := bytes.ReplaceAll(want, []byte("\r\n"), []byte("\n")); !bytes.Equal(got, file) {
			t.Errorf("size %d: the terminal bytes are not the file with CRLF line ends", size)
		}
		if bytes.Contains(file, []byte(prompt)) {
			t.Errorf("size %d: the file holds the prompt", size)
		}
	}
	a, _ := makeOutput(1000, 1)
	b, _ := makeOutput(1000, 1)
	if !bytes.Equal(a, b) {
		t.Error("same seed, different output")
	}
	if n := utf8.RuneCount(a); n == len(a) {
		t.Error("no multi-byte characters")
	}
}

func TestVerifier(t *testing.T) {
	want := []byte("héllo\r\nworld\r\n")
	stream := append([]byte("cat /tmp/o\r\n"), want...)
	stream = append(stream, prompt...)
	for _, chunk := range []int{1, 3, len(stream)} {
		v := &verifier{want: want, done: make(chan struct{})}
		var rest []byte
		for i := 0; i < len(stream); i += chunk {
			r, detach := v.feed(stream[i:min(i+chunk, len(stream))], time.Now())
			if detach {
				rest = append(r, stream[min(i+chunk, len(stream)):]...)
				break
			}
		}
		if v.err != nil || v.phase != 2 {
			t.Fatalf("chunk %d: got error %v, phase %d; want a match", chunk, v.err, v.phase)
		}
		if string(rest) != prompt {
			t.Errorf("chunk %d: rest %q, want %q", chunk, rest, prompt)
		}
	}
	v := &verifier{want: want, done: make(chan struct{})}
	v.feed([]byte("cmd\r\nhello\r\n"), time.Now())
	if v.err == nil || !strings.Contains(v.err.Error(), "differs at byte 1") {
		t.Errorf("mismatch: got error %v, want one at byte 1", v.err)
	}
}
