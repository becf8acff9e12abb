package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alfresco-ssh/alfresco-ssh/internal/testdeps"
)

// TestTestScriptStopsWhenSomethingIsMissing runs scripts/test.sh where it
// cannot install what it needs (as a user other than root): it must stop at
// once with exit 1 and say what is missing, never run the tests and skip.
func TestTestScriptStopsWhenSomethingIsMissing(t *testing.T) {
	// Not t.TempDir: another user must reach it.
	bin, err := os.MkdirTemp("", "test-script-path")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(bin) })
	if err := os.Chmod(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	// A PATH with the few tools the script's checks use, node and the
	// services, but not chromium.
	for _, tool := range []string{"bash", "dirname", "id", "node", "npm", "redis-server", "promtool"} {
		p, err := exec.LookPath(tool)
		if err != nil {
			testdeps.Missing(t, "no "+tool+" for the script")
		}
		if err := os.Symlink(p, filepath.Join(bin, tool)); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name string
		path string
		want []string
	}{
		{"no chromium", bin, []string{"scripts/test.sh: missing: chromium\n", "apt-get install chromium"}},
		{"not root", bin + ":" + os.Getenv("PATH"), []string{"scripts/test.sh: the integration tests run a real sshd, which needs root"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.CommandContext(t.Context(), filepath.Join(bin, "bash"), "scripts/test.sh")
			if os.Geteuid() == 0 {
				setpriv, err := exec.LookPath("setpriv")
				if err != nil {
					testdeps.Missing(t, "no setpriv (util-linux) to run the script as another user than root")
				}
				cmd = exec.CommandContext(t.Context(), setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--",
					filepath.Join(bin, "bash"), "scripts/test.sh")
			}
			cmd.Env = []string{"PATH=" + tt.path, "HOME=/nonexistent"}
			out, err := cmd.CombinedOutput()
			if code := cmd.ProcessState.ExitCode(); code != 1 {
				t.Fatalf("got exit %d (%v), want 1\n%s", code, err, out)
			}
			for _, w := range tt.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			if strings.Contains(string(out), "== gofmt") {
				t.Errorf("the script went on to the checks:\n%s", out)
			}
		})
	}
}
