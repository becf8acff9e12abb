package e2e

import (
	"fmt"
	"os"
	"syscall"
	"testing"

	"go.uber.org/goleak"

	"github.com/alfresco-ssh/alfresco-ssh/internal/testdeps"
)

func TestMain(m *testing.M) {
	// 200 sessions at once need a few thousand descriptors in the gateway.
	// Setting the limit explicitly makes child processes inherit it (Go
	// otherwise restores the original soft limit in them).
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: raise RLIMIT_NOFILE:", err)
		}
	}
	goleak.VerifyTestMain(testdeps.Main(suite{m}))
}

// suite runs the tests, then stops what the tests shared (the browser) and
// removes the process's temporary directory, before goleak looks.
type suite struct{ m *testing.M }

func (s suite) Run() int {
	code := s.m.Run()
	if err := stopSharedBrowser(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: stop the browser:", err)
		code = 1
	}
	if err := removeProcessDir(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		code = 1
	}
	return code
}
