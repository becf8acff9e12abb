package testdeps

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// helperEnv makes the test binary run TestHelperSkips for real.
const helperEnv = "TESTDEPS_HELPER"

func TestMain(m *testing.M) {
	os.Exit(Main(m).Run())
}

// TestHelperSkips is run by TestMissing in a child process.
func TestHelperSkips(t *testing.T) {
	if os.Getenv(helperEnv) != "1" {
		return // only as a child of TestMissing
	}
	for _, name := range []string{"a", "b"} {
		t.Run(name, func(t *testing.T) { Missing(t, "no /usr/sbin/sshd (install openssh-server)") })
	}
	t.Run("c", func(t *testing.T) { Missing(t, "node missing") })
}

func TestMissing(t *testing.T) {
	tests := []struct {
		ci       string
		wantExit int
		want     []string
	}{
		{"", 0, []string{
			"testdeps: 3 tests skipped because this machine lacks what they need (./scripts/test.sh installs it, or stops):\n" +
				"  no /usr/sbin/sshd (install openssh-server): 2 (TestHelperSkips/a, TestHelperSkips/b)\n" +
				"  node missing: 1 (TestHelperSkips/c)\n",
		}},
		{"true", 1, []string{"no /usr/sbin/sshd (install openssh-server) (CI=true: not skipping)", "--- FAIL: TestHelperSkips/a"}},
	}
	for _, tt := range tests {
		t.Run("CI="+tt.ci, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run", "^TestHelperSkips$", "-test.v")
			cmd.Env = append(os.Environ(), helperEnv+"=1", "CI="+tt.ci)
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			if err != nil && !errors.As(err, &exit) {
				t.Fatal(err)
			}
			if code := cmd.ProcessState.ExitCode(); code != tt.wantExit {
				t.Errorf("got exit %d, want %d\n%s", code, tt.wantExit, out)
			}
			for _, w := range tt.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

func TestShortList(t *testing.T) {
	if got, want := shortList([]string{"A", "B", "C", "D", "E", "F"}, 4), "A, B, C, D, and 2 more"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
