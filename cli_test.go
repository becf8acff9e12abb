package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"regexp"
	"runtime/debug"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/alfresco-ssh/alfresco-ssh/internal/syncbuf"
	"github.com/alfresco-ssh/alfresco-ssh/internal/testdeps"
)

// asMainEnv makes the test binary run main() instead of the tests, so that
// tests can run the program as a process (exit status, limits) without a
// build.
const asMainEnv = "BE_ALFRESCO_SSH"

// mainCommand is the program as a process, with a clean environment plus
// env; it gets SIGINT (stop at once) when the test ends.
func mainCommand(t *testing.T, env []string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), os.Args[0], args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGINT) }
	cmd.WaitDelay = 15 * time.Second // past the program's own shutdown bound
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, envPrefix) && !strings.HasPrefix(kv, "CREDENTIALS_KEY=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(append(cmd.Env, asMainEnv+"=1"), env...)
	return cmd
}

// runMain runs the program to its end.
func runMain(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := mainCommand(t, env, args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatal(err)
	}
	return out.String(), errOut.String(), cmd.ProcessState.ExitCode()
}

func TestHelpListsEveryFlag(t *testing.T) {
	stdout, stderr, code := runMain(t, nil, "--help")
	if code != 0 || stderr != "" {
		t.Fatalf("--help: got exit %d and stderr %q, want 0 and nothing", code, stderr)
	}
	var o options
	o.flagSet().VisitAll(func(f *flag.Flag) {
		line := regexp.MustCompile(`(?m)^  --` + regexp.QuoteMeta(f.Name) + `\b.*$`).FindString(stdout)
		if line == "" {
			t.Errorf("--help does not list --%s", f.Name)
			return
		}
		if env := envName(f.Name); env != "" && !strings.Contains(line, env) {
			t.Errorf("--help line %q: want the variable %s", line, env)
		}
		if d := defaultText(f); d != "" && !strings.Contains(line, "default "+d) {
			t.Errorf("--help line %q: want its default %s", line, d)
		}
	})
	for _, want := range []string{
		"  --credentials-ttl duration  (ALFRESCO_SSH_CREDENTIALS_TTL, default 2m)\n",
		"  --port int  (ALFRESCO_SSH_PORT, default 5000)\n",
		"  --debug  (ALFRESCO_SSH_DEBUG)\n",
		"  --version\n",
		"  CREDENTIALS_KEY\n",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("--help lacks %q:\n%s", want, stdout)
		}
	}
	if _, _, code := runMain(t, nil, "-h"); code != 0 {
		t.Errorf("-h: got exit %d, want 0", code)
	}
}

func TestBadValuesSayTheExpectedForm(t *testing.T) {
	tests := []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"env duration", []string{"ALFRESCO_SSH_CREDENTIALS_TTL=5"}, nil,
			"alfresco-ssh: ALFRESCO_SSH_CREDENTIALS_TTL=5: want a duration such as 90s or 2m (see --help)\n"},
		{"env int", []string{"ALFRESCO_SSH_PORT=http"}, nil,
			"alfresco-ssh: ALFRESCO_SSH_PORT=http: want a whole number (see --help)\n"},
		{"env bool", []string{"ALFRESCO_SSH_DEBUG=yes please"}, nil,
			`alfresco-ssh: ALFRESCO_SSH_DEBUG="yes please": want true or false (see --help)` + "\n"},
		{"flag duration", nil, []string{"--ssh-timeout", "soon"},
			"alfresco-ssh: --ssh-timeout=soon: want a duration such as 90s or 2m (see --help)\n"},
		{"flag int", nil, []string{"--max-body=1e6"},
			"alfresco-ssh: --max-body=1e6: want a whole number (see --help)\n"},
		{"flag bool", nil, []string{"--debug=maybe"},
			"alfresco-ssh: --debug=maybe: want true or false (see --help)\n"},
		{"unknown flag", nil, []string{"--colour"},
			"alfresco-ssh: flag provided but not defined: -colour (see --help)\n"},
		{"missing value", nil, []string{"--port"},
			"alfresco-ssh: flag needs an argument: -port (see --help)\n"},
		{"out of range", nil, []string{"--port", "70000"},
			"alfresco-ssh: --port must be from 0 to 65535, got 70000 (see --help)\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, code := runMain(t, tt.env, tt.args...)
			if code != 2 || stdout != "" || stderr != tt.want {
				t.Errorf("got exit %d, stdout %q, stderr %q; want exit 2 and stderr %q", code, stdout, stderr, tt.want)
			}
		})
	}
}

func TestErrorExit(t *testing.T) {
	var b bytes.Buffer
	if code := errorExit(errors.New("listen tcp 127.0.0.1:5000: bind: address already in use"), &b); code != 1 {
		t.Errorf("a failure: got exit %d, want 1", code)
	}
	if got, want := b.String(), "alfresco-ssh: listen tcp 127.0.0.1:5000: bind: address already in use\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestVersionOf(t *testing.T) {
	vcs := func(rev, modified string) []debug.BuildSetting {
		return []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: modified}}
	}
	tests := []struct {
		name    string
		stamped string
		info    *debug.BuildInfo
		want    string
	}{
		{"stamped by -ldflags", "v2.1.0", &debug.BuildInfo{Main: debug.Module{Version: "v2.0.0"}}, "v2.1.0"},
		{"go install @v2.0.3", "", &debug.BuildInfo{Main: debug.Module{Version: "v2.0.3"}}, "v2.0.3"},
		{"pseudo-version of a checkout", "", &debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20261202163936-9bb19c750b9b+dirty"}},
			"v0.0.0-20261202163936-9bb19c750b9b+dirty"},
		{"devel with a revision", "", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs("9bb19c750b9b43f18bfe04c8e88b4191d37fa754", "false")},
			"dev-9bb19c750b9b"},
		{"devel, modified", "", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs("9bb19c750b9b43f18bfe04c8e88b4191d37fa754", "true")},
			"dev-9bb19c750b9b-dirty"},
		{"devel without VCS", "", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, "dev"},
		{"no build information", "", nil, "dev"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := versionOf(tt.stamped, tt.info); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestCheckFileLimit(t *testing.T) {
	tests := []struct {
		name        string
		limit       uint64
		raiseErr    error
		maxSessions int
		want        []string
	}{
		{"enough", 1 << 20, nil, 5000, nil},
		{"just enough", 2*100 + fdMargin, nil, 100, nil},
		{"too low", 1024, nil, 5000, []string{"the open-file limit cannot cover --max-sessions", "limit=1024", "needed=10256"}},
		{"no session limit", 1024, nil, 0, nil},
		{"cannot raise", 1024, errors.New("operation not permitted"), 100, []string{"could not raise the open-file limit", "operation not permitted"}},
		{"no limit known", 0, nil, 5000, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			log := slog.New(slog.NewTextHandler(&logs, nil))
			got := checkFileLimit(log, tt.maxSessions, func() (uint64, error) { return tt.limit, tt.raiseErr })
			if got != tt.limit {
				t.Errorf("got limit %d, want %d", got, tt.limit)
			}
			if len(tt.want) == 0 && logs.Len() > 0 {
				t.Errorf("got log %q, want none", logs.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(logs.String(), w) {
					t.Errorf("got log %q, want it to mention %q", logs.String(), w)
				}
			}
		})
	}
}

// TestFileLimitAtStartUp starts the program under a low soft and hard
// limit on open files: it raises the soft limit to the hard one, and warns
// when that cannot cover --max-sessions.
func TestFileLimitAtStartUp(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		testdeps.Missing(t, "no sh to set the limits with")
	}
	tests := []struct {
		maxSessions string
		warn        bool
	}{{"300", false}, {"5000", true}}
	for _, tt := range tests {
		t.Run("max-sessions "+tt.maxSessions, func(t *testing.T) {
			cmd := mainCommand(t, nil, "--port", "0", "--max-sessions", tt.maxSessions)
			cmd.Args = append([]string{"sh", "-c", `ulimit -n 1000 && ulimit -Sn 100 && exec "$0" "$@"`}, cmd.Args...)
			cmd.Path = "/bin/sh"
			logs := startMain(t, cmd)
			if !strings.Contains(logs, "open_files_limit=1000") {
				t.Errorf("got log %q, want the soft limit raised to the hard limit, 1000", logs)
			}
			if warned := strings.Contains(logs, "cannot cover --max-sessions"); warned != tt.warn {
				t.Errorf("got log %q; want a warning about the limit: %v", logs, tt.warn)
			}
		})
	}
}

// startMain starts the program and returns its log up to the "listening"
// line; the program is stopped with SIGINT at the end of the test and
// must then exit cleanly.
func startMain(t *testing.T, cmd *exec.Cmd) string {
	t.Helper()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var rest syncbuf.Buffer
	copied := make(chan struct{})
	t.Cleanup(func() { // after t.Context's end has sent SIGINT
		<-copied
		// Wait reports the context's end even when the program exited 0.
		if err := cmd.Wait(); !cmd.ProcessState.Success() {
			t.Errorf("program: %v\n%s", err, rest.String())
		}
	})
	var logs strings.Builder
	lines := bufio.NewScanner(stderr)
	for lines.Scan() {
		logs.WriteString(lines.Text() + "\n")
		if strings.Contains(lines.Text(), "msg=listening") {
			break
		}
	}
	go func() {
		io.Copy(&rest, stderr)
		close(copied)
	}()
	if !strings.Contains(logs.String(), "msg=listening") {
		t.Fatalf("the program did not start listening:\n%s", logs.String())
	}
	return logs.String()
}
