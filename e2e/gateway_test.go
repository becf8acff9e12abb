package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/alfresco-ssh/alfresco-ssh/internal/sioclient"
	"github.com/alfresco-ssh/alfresco-ssh/internal/sshdtest"
	"github.com/alfresco-ssh/alfresco-ssh/internal/syncbuf"
	"github.com/alfresco-ssh/alfresco-ssh/internal/testdeps"
)

// The gateway under test is the real binary, built once per test process,
// started per test on a port of its own, stopped with SIGINT (at once;
// SIGTERM would drain).

const (
	startTimeout = 30 * time.Second // the binary says "listening"
	stopTimeout  = 15 * time.Second // above the binary's 10 s shutdown bound
)

// need skips the test when something it needs is missing here, or fails it
// when CI is "true", where nothing may be skipped.
func need(t testing.TB, err error, what string) {
	t.Helper()
	if err == nil {
		return
	}
	testdeps.Missing(t, fmt.Sprintf("%s: %v", what, err))
}

var procDir struct {
	mu   sync.Mutex
	path string
}

// processDir is a temporary directory for the whole test process (the
// binary, the browser profile), removed by TestMain.
func processDir(t testing.TB) string {
	t.Helper()
	procDir.mu.Lock()
	defer procDir.mu.Unlock()
	if procDir.path == "" {
		dir, err := os.MkdirTemp("", "alfresco-e2e-")
		if err != nil {
			t.Fatal(err)
		}
		procDir.path = dir
	}
	return procDir.path
}

func removeProcessDir() error {
	procDir.mu.Lock()
	defer procDir.mu.Unlock()
	if procDir.path == "" {
		return nil
	}
	err := os.RemoveAll(procDir.path)
	procDir.path = ""
	return err
}

var build struct {
	once sync.Once
	path string
	err  error
}

// gatewayBinary builds the gateway from the module root, once per process.
func gatewayBinary(t testing.TB) string {
	t.Helper()
	dir := processDir(t)
	build.once.Do(func() {
		goTool, err := exec.LookPath("go")
		if err != nil {
			build.err = err
			return
		}
		out := filepath.Join(dir, "alfresco-ssh")
		cmd := exec.Command(goTool, "build", "-o", out, "..")
		if b, err := cmd.CombinedOutput(); err != nil {
			build.err = fmt.Errorf("go build: %v\n%s", err, b)
			return
		}
		build.path = out
	})
	if build.err != nil {
		t.Fatal(build.err)
	}
	return build.path
}

// gateway is a running alfresco-ssh process.
type gateway struct {
	url    string // "http://127.0.0.1:port"
	logs   *syncbuf.Buffer
	cmd    *exec.Cmd
	exited chan struct{} // closed once the process has been waited for
	// exitedOnPurpose: the test saw the process exit (a drain).
	exitedOnPurpose bool
}

var listeningAddr = regexp.MustCompile(`msg=listening addr=(\S+)`)

// startGateway runs the binary on a free loopback port with extra flags and
// stops it when the test ends, failing the test unless it exits 0.
func startGateway(t testing.TB, flags ...string) *gateway {
	t.Helper()
	return startGatewayEnv(t, nil, flags...)
}

// startGatewayEnv is startGateway with extra environment variables
// ("NAME=value").
func startGatewayEnv(t testing.TB, env []string, flags ...string) *gateway {
	t.Helper()
	bin := gatewayBinary(t)
	// Port 0: the kernel picks a free port and the "listening" line says
	// which, so parallel tests never race for one.
	cmd := exec.Command(bin, append([]string{"--host", "localhost", "--port", "0"}, flags...)...)
	cmd.Env = append(gatewayEnv(), env...)
	// If the test process dies without its cleanups, the gateway goes too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	g := &gateway{logs: &syncbuf.Buffer{}, cmd: cmd, exited: make(chan struct{})}
	cmd.Stdout = g.logs
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	go func() { // Ends when the process closes its stderr, that is exits.
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(g.logs, line)
			if m := listeningAddr.FindStringSubmatch(line); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
			}
		}
		io.Copy(g.logs, stderr) // the rest, should a line be too long for the scanner
		cmd.Wait()
		close(g.exited)
	}()
	t.Cleanup(func() { g.stop(t) })
	select {
	case a := <-addr:
		g.url = "http://" + a
	case <-g.exited:
		t.Fatalf("gateway exited before listening (%v):\n%s", cmd.ProcessState, g.logs)
	case <-time.After(startTimeout):
		t.Fatalf("gateway did not log \"listening\" within %v:\n%s", startTimeout, g.logs)
	}
	return g
}

// gatewayEnv is the test's environment without the gateway's own
// variables, so that only the flags configure it.
func gatewayEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ALFRESCO_SSH_") && !strings.HasPrefix(kv, "CREDENTIALS_KEY=") {
			env = append(env, kv)
		}
	}
	return env
}

func (g *gateway) stop(t testing.TB) {
	t.Helper()
	select {
	case <-g.exited:
		if !g.exitedOnPurpose {
			t.Errorf("gateway exited during the test (%v)", g.cmd.ProcessState)
		}
	default:
		g.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-g.exited:
			if code := g.cmd.ProcessState.ExitCode(); code != 0 {
				t.Errorf("gateway exit status after SIGINT: got %d, want 0", code)
			}
		case <-time.After(stopTimeout):
			g.cmd.Process.Kill()
			<-g.exited
			t.Errorf("gateway still running %v after SIGINT; killed", stopTimeout)
		}
	}
	if logs := g.logs.String(); strings.Contains(logs, "panic") {
		t.Errorf("gateway log mentions a panic")
	}
	if t.Failed() {
		t.Logf("gateway log:\n%s", g.logs)
	}
}

// httpClient keeps no idle connections, so no goroutine outlives a test.
var httpClient = &http.Client{
	Timeout:   30 * time.Second,
	Transport: &http.Transport{DisableKeepAlives: true},
}

// post sends a JSON body and decodes the JSON reply.
func post(t testing.TB, url string, body any) (int, map[string]any) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	res, err := httpClient.Post(url, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(res.Body).Decode(&m); err != nil {
		t.Fatalf("POST %s: got %d with a body that is not JSON: %v", url, res.StatusCode, err)
	}
	return res.StatusCode, m
}

// login is the create-request body for the sshd test user.
func login(sshd *sshdtest.Server) map[string]any {
	return map[string]any{"hostname": sshd.Host, "port": sshd.Port, "username": sshd.User, "password": sshd.Password}
}

// createCredentials is POST /create-credentials (generation 2); it returns
// the connection id.
func (g *gateway) createCredentials(t testing.TB, body map[string]any) string {
	t.Helper()
	status, m := post(t, g.url+"/create-credentials", body)
	id, _ := m["connection_uuid"].(string)
	if status != http.StatusOK || m["success"] != true || id == "" {
		t.Fatalf("create-credentials: got %d %v, want 200 with success and connection_uuid", status, m)
	}
	return id
}

// createSession is POST /create-session (generation 1); it returns the id
// and the page URL.
func (g *gateway) createSession(t testing.TB, body map[string]any) (id, url string) {
	t.Helper()
	status, m := post(t, g.url+"/create-session", body)
	id, _ = m["create_session_id"].(string)
	url, _ = m["url"].(string)
	if status != http.StatusOK || id == "" || url != g.url+"/"+id {
		t.Fatalf("create-session: got %d %v, want 200 with create_session_id and url %s/<id>", status, m, g.url)
	}
	return id, url
}

// count is how many log lines of the gateway carry msg.
func (g *gateway) count(msg string) int {
	return strings.Count(g.logs.String(), "msg="+msg)
}

// e2eDir is this package's directory, where the Node and Python clients
// and node_modules live; the test fails or skips when node or the npm
// packages are missing.
func e2eDir(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	_, err = exec.LookPath("node")
	need(t, err, "node not found")
	for _, pkg := range []string{"sio-4.0.1", "sio-4.5.4", "sio-latest", "playwright-core", "xterm4"} {
		_, err := os.Stat(filepath.Join(dir, "node_modules", pkg, "package.json"))
		need(t, err, "npm packages missing (run: npm ci --prefix e2e)")
	}
	return dir
}

// debianPython is Debian's interpreter, which python3-socketio is for (a
// python3 earlier in PATH, such as pyenv's, does not see it).
const debianPython = "/usr/bin/python3"

func needPython(t testing.TB) {
	t.Helper()
	out, err := exec.Command(debianPython, "-c", "import socketio, engineio, requests, websocket").CombinedOutput()
	if err != nil {
		err = fmt.Errorf("%v: %s", err, bytes.TrimSpace(out))
	}
	need(t, err, "Debian's python3-socketio, python3-requests and python3-websocket are needed (apt-get install python3-socketio python3-requests python3-websocket)")
}

// The input and output of client.mjs and pyclient.py (see their headers).
type (
	scenario = sioclient.Scenario
	step     = sioclient.Step
	result   = sioclient.Result
)

// runClient runs one scenario with socket.io-client from Node.
func runClient(t testing.TB, sc scenario) *result {
	t.Helper()
	r, err := sioclient.Run(e2eDir(t), sc)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// runClients runs many scenarios at once in one Node process.
func runClients(t testing.TB, defaults scenario, scs []scenario) (results []result, elapsed time.Duration) {
	t.Helper()
	results, elapsed, err := sioclient.RunMany(e2eDir(t), defaults, scs)
	if err != nil {
		t.Fatal(err)
	}
	return results, elapsed
}

// runPython runs one scenario with Debian's python3-socketio.
func runPython(t testing.TB, sc scenario) *result {
	t.Helper()
	needPython(t)
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	if sc.TimeoutMs == 0 {
		sc.TimeoutMs = sioclient.DefaultTimeoutMs
	}
	var r result
	if err := sioclient.Exec(sioclient.Deadline(sc.TimeoutMs), sc, &r, debianPython, filepath.Join(dir, "pyclient.py")); err != nil {
		t.Fatal(err)
	}
	return &r
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
