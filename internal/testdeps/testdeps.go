// Package testdeps decides what a test does when something it needs is
// missing on this machine (root and sshd, node with e2e/node_modules,
// chromium, python3-socketio). Where nothing may be skipped, with CI=true
// (which scripts/test.sh sets, after installing what is missing or
// stopping), the test fails. Elsewhere it is skipped, and the package's
// test run ends with a list of what was skipped and why, so that a green
// `go test` says what it did not test.
//
// Missing is safe for concurrent use.
package testdeps

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
)

var (
	mu      sync.Mutex
	skipped = map[string][]string{} // test names by reason
)

// Required reports whether every dependency must be present: CI is
// "true".
func Required() bool { return os.Getenv("CI") == "true" }

// Missing skips t because of reason (what is missing, and how to install
// it), or fails it when Required.
func Missing(t testing.TB, reason string) {
	t.Helper()
	if Required() {
		t.Fatalf("%s (CI=true: not skipping)", reason)
	}
	mu.Lock()
	skipped[reason] = append(skipped[reason], t.Name())
	mu.Unlock()
	t.Skip(reason)
}

// Main wraps a package's tests (the m of TestMain, or what wraps it) so
// that, after they run, the tests that Missing skipped are listed.
func Main(m interface{ Run() int }) interface{ Run() int } { return reporter{m} }

type reporter struct{ m interface{ Run() int } }

func (r reporter) Run() int {
	code := r.m.Run()
	w, closeW := summaryWriter()
	defer closeW()
	Report(w)
	return code
}

// Report writes what Missing skipped, if anything.
func Report(w io.Writer) {
	mu.Lock()
	defer mu.Unlock()
	n := 0
	for _, tests := range skipped {
		n += len(tests)
	}
	if n == 0 {
		return
	}
	fmt.Fprintf(w, "%s: %d tests skipped because this machine lacks what they need (./scripts/test.sh installs it, or stops):\n", packageName(), n)
	reasons := make([]string, 0, len(skipped))
	for r := range skipped {
		reasons = append(reasons, r)
	}
	slices.Sort(reasons)
	for _, r := range reasons {
		tests := skipped[r]
		slices.Sort(tests)
		fmt.Fprintf(w, "  %s: %d (%s)\n", r, len(tests), shortList(tests, 4))
	}
}

// summaryWriter is where the list goes: the test output with -v (or
// -json); otherwise the terminal, because `go test ./pkg` shows a passing
// package's output only with -v.
func summaryWriter() (io.Writer, func()) {
	if !testing.Verbose() {
		if tty, err := os.OpenFile("/dev/tty", os.O_WRONLY, 0); err == nil {
			return tty, func() { tty.Close() }
		}
	}
	return os.Stdout, func() {}
}

// packageName is the test binary's package, from its name ("server.test").
func packageName() string {
	name := os.Args[0]
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	return strings.TrimSuffix(strings.TrimSuffix(name, ".exe"), ".test")
}

func shortList(names []string, n int) string {
	if len(names) <= n {
		return strings.Join(names, ", ")
	}
	return strings.Join(names[:n], ", ") + fmt.Sprintf(", and %d more", len(names)-n)
}
