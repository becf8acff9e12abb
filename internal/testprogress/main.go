// Command testprogress shows a `go test -json` run as it moves, for a
// person watching scripts/test.sh: each package as it starts and ends, a
// line every 30 seconds while a long package runs, the output of every test
// that fails, and at the end what passed, failed and was skipped (and why).
// It exits 1 when any package failed or did not build.
//
//	go test -json ./... | go run ./internal/testprogress -trim "$(go list -m)/"
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

// heartbeat is how often a long-running package reports that it moves.
const heartbeat = 30 * time.Second

func main() {
	trim := flag.String("trim", "", "prefix to cut from package paths")
	flag.Parse()
	p := newProgress(os.Stdout, *trim, time.Now())
	tick := time.NewTicker(heartbeat)
	defer tick.Stop()
	go func() {
		for now := range tick.C {
			p.tick(now)
		}
	}()
	if err := p.read(os.Stdin); err != nil {
		fmt.Fprintln(os.Stderr, "testprogress:", err)
		os.Exit(1)
	}
	if !p.finish(time.Now()) {
		os.Exit(1)
	}
}

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Time       time.Time
	Action     string
	Package    string
	ImportPath string // build-output and build-fail
	Test       string
	Elapsed    float64
	Output     string
	// FailedBuild is the import path whose build failed, in a package's
	// "fail" event.
	FailedBuild string
}

// progress is the state of the run. Its methods are safe for concurrent
// use (the heartbeat comes from another goroutine).
type progress struct {
	mu    sync.Mutex
	w     io.Writer
	trim  string
	start time.Time

	pkgs       map[string]*pkgRun
	buildOut   map[string][]string // build output by import path
	passed     int
	failed     []string // package names
	skipped    []string // "pkg Test: reason"
	lastReport time.Time
}

// pkgRun is one package's run.
type pkgRun struct {
	start   time.Time
	done    int                  // top-level tests ended
	running map[string]time.Time // top-level tests started, not ended
	output  map[string][]string  // by test; "" is the package's own output
	failed  []string
}

func newProgress(w io.Writer, trim string, now time.Time) *progress {
	return &progress{w: w, trim: trim, start: now, lastReport: now,
		pkgs: make(map[string]*pkgRun), buildOut: make(map[string][]string)}
}

func (p *progress) read(r io.Reader) error {
	lines := bufio.NewScanner(r)
	lines.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for lines.Scan() {
		var e event
		if err := json.Unmarshal(lines.Bytes(), &e); err != nil {
			p.printf("%s\n", lines.Text()) // go test's own complaints are not JSON
			continue
		}
		p.event(e)
	}
	return lines.Err()
}

func (p *progress) event(e event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch e.Action {
	case "build-output":
		p.buildOut[e.ImportPath] = append(p.buildOut[e.ImportPath], e.Output)
		return
	case "build-fail":
		return // reported with the package's "fail", which names the build
	}
	name := strings.TrimPrefix(e.Package, p.trim)
	if name == "" || e.Package == strings.TrimSuffix(p.trim, "/") {
		name = "."
	}
	run := p.pkgs[e.Package]
	if run == nil {
		run = &pkgRun{start: e.Time, running: make(map[string]time.Time), output: make(map[string][]string)}
		p.pkgs[e.Package] = run
	}
	top, _, _ := strings.Cut(e.Test, "/")
	switch {
	case e.Action == "start":
		p.report(e.Time, "%s ...", name)
	case e.Action == "run" && e.Test == top:
		run.running[top] = e.Time
	case e.Action == "output":
		run.output[e.Test] = append(run.output[e.Test], e.Output)
	case e.Test != "" && (e.Action == "pass" || e.Action == "fail" || e.Action == "skip"):
		p.testEnded(run, name, e)
	case e.Test == "" && (e.Action == "pass" || e.Action == "skip"):
		p.passed++
		p.report(e.Time, "ok   %s (%s)%s", name, seconds(e.Elapsed), noTests(run))
		delete(p.pkgs, e.Package)
	case e.Test == "" && e.Action == "fail":
		p.failed = append(p.failed, name)
		p.report(e.Time, "FAIL %s (%s)%s", name, seconds(e.Elapsed), failedTests(run))
		p.printf("%s", strings.Join(p.buildOut[e.FailedBuild], ""))
		p.printf("%s", strings.Join(packageOutput(run.output[""]), ""))
		delete(p.pkgs, e.Package)
	}
}

// testEnded counts a test that ended, prints its output (with its
// subtests') when it failed and forgets it.
func (p *progress) testEnded(run *pkgRun, pkg string, e event) {
	switch e.Action {
	case "fail":
		if !slices.ContainsFunc(run.failed, func(t string) bool { return strings.HasPrefix(t, e.Test+"/") }) {
			run.failed = append(run.failed, e.Test) // the subtests that failed say more
		}
	case "skip":
		p.skipped = append(p.skipped, fmt.Sprintf("%s %s: %s", pkg, e.Test, skipReason(run.output[e.Test])))
	}
	if e.Action == "fail" {
		p.printf("=== %s %s\n", pkg, e.Test)
	}
	for t, out := range run.output {
		if t == e.Test || strings.HasPrefix(t, e.Test+"/") {
			if e.Action == "fail" {
				p.printf("%s", strings.Join(out, ""))
			}
			delete(run.output, t)
		}
	}
	if !strings.Contains(e.Test, "/") {
		delete(run.running, e.Test)
		run.done++
	}
}

// tick reports each package that has run for a while without a report.
func (p *progress) tick(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if now.Sub(p.lastReport) < heartbeat {
		return
	}
	for pkg, run := range p.pkgs {
		name := strings.TrimPrefix(pkg, p.trim)
		oldest, since := "", now
		for t, at := range run.running {
			if at.Before(since) {
				oldest, since = t, at
			}
		}
		msg := fmt.Sprintf("     %s: %d tests done after %s", name, run.done, seconds(now.Sub(run.start).Seconds()))
		if oldest != "" {
			msg += fmt.Sprintf(", running %s (%s)", oldest, seconds(now.Sub(since).Seconds()))
		}
		p.report(now, "%s", msg)
	}
}

// finish prints the summary and reports whether everything passed.
func (p *progress) finish(now time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for pkg := range p.pkgs { // go test ended without a verdict for these
		p.failed = append(p.failed, strings.TrimPrefix(pkg, p.trim)+" (no result)")
	}
	p.printf("\n%d packages ok, %d failed in %s", p.passed, len(p.failed), seconds(now.Sub(p.start).Seconds()))
	if len(p.failed) > 0 {
		p.printf(": %s", strings.Join(p.failed, ", "))
	}
	p.printf("\n")
	if len(p.skipped) > 0 {
		p.printf("%d tests skipped:\n", len(p.skipped))
		for _, s := range p.skipped {
			p.printf("    %s\n", s)
		}
	}
	return len(p.failed) == 0
}

func (p *progress) report(at time.Time, format string, args ...any) {
	if at.IsZero() {
		at = time.Now()
	}
	d := at.Sub(p.start).Round(time.Second)
	p.printf("[%02d:%02d] "+format+"\n", append([]any{int(d.Minutes()), int(d.Seconds()) % 60}, args...)...)
	p.lastReport = at
}

func (p *progress) printf(format string, args ...any) { fmt.Fprintf(p.w, format, args...) }

func seconds(s float64) string { return fmt.Sprintf("%.1fs", s) }

func noTests(run *pkgRun) string {
	if run.done == 0 {
		return " no tests"
	}
	return fmt.Sprintf(" %d tests", run.done)
}

func failedTests(run *pkgRun) string {
	if len(run.failed) == 0 {
		return ""
	}
	return ": " + strings.Join(run.failed, ", ")
}

// skipReason is the message a skipped test logged last.
func skipReason(out []string) string {
	for i := len(out) - 1; i >= 0; i-- {
		line := strings.TrimSpace(out[i])
		if line == "" || strings.HasPrefix(line, "--- SKIP") || strings.HasPrefix(line, "=== ") {
			continue
		}
		if _, msg, ok := strings.Cut(line, ": "); ok && strings.Contains(line, ".go:") {
			return msg
		}
		return line
	}
	return "(no reason given)"
}

// packageOutput drops go test's own verdict lines from a package's output.
func packageOutput(out []string) []string {
	var keep []string
	for _, line := range out {
		if line == "FAIL\n" || line == "PASS\n" || strings.HasPrefix(line, "FAIL\t") || strings.HasPrefix(line, "ok  \t") {
			continue
		}
		keep = append(keep, line)
	}
	return keep
}
