package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alfresco-ssh/alfresco-ssh/internal/sioclient"
	"github.com/alfresco-ssh/alfresco-ssh/internal/sshdtest"
	"github.com/alfresco-ssh/alfresco-ssh/internal/syncbuf"
	"github.com/alfresco-ssh/alfresco-ssh/internal/testdeps"
	"github.com/alfresco-ssh/alfresco-ssh/internal/waitfor"
)

// Helpers for the integration tests: a gateway on 127.0.0.1:0 and the real
// socket.io-client from npm driven by e2e/client.mjs.

type gateway struct {
	srv  *Server
	url  string
	logs *syncbuf.Buffer
}

// startGateway serves a Server on a loopback port until the test ends, then
// shuts it down.
func startGateway(t *testing.T, cfg Config) *gateway {
	t.Helper()
	logs := &syncbuf.Buffer{}
	cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if cfg.SSH.Term == "" {
		cfg.SSH.Term = "xterm-256color"
	}
	if cfg.SSH.Timeout == 0 {
		cfg.SSH.Timeout = 10 * time.Second
	}
	srv := newTestServer(t, cfg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
		if t.Failed() {
			t.Logf("gateway log:\n%s", logs.String())
		}
	})
	return &gateway{srv: srv, url: "http://" + ln.Addr().String(), logs: logs}
}

// create posts credentials as JSON and returns the connection id.
func (g *gateway) create(t *testing.T, body map[string]any) string {
	t.Helper()
	b, _ := json.Marshal(body)
	res, err := http.Post(g.url+"/create-credentials", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var m map[string]any
	json.NewDecoder(res.Body).Decode(&m)
	id, _ := m["connection_uuid"].(string)
	if res.StatusCode != 200 || id == "" {
		t.Fatalf("create-credentials: got %d %v, want 200 with an id", res.StatusCode, m)
	}
	return id
}

// passwordLogin is the JSON body for the sshd test user.
func passwordLogin(sshd *sshdtest.Server) map[string]any {
	return map[string]any{"hostname": sshd.Host, "port": sshd.Port, "username": sshd.User, "password": sshd.Password}
}

// The input and output of e2e/client.mjs; see that file.
type (
	scenario = sioclient.Scenario
	step     = sioclient.Step
	result   = sioclient.Result
)

// waitReady is the Scenario.WaitReady of tests that wait for
// connection-ready; startClient sends false when WaitReady is nil.
var waitReady = sioclient.Bool(true)

// e2eDir is where the Node client and its node_modules live.
func e2eDir(t testing.TB) string {
	t.Helper()
	dir, err := filepath.Abs("../e2e")
	if err != nil {
		t.Fatal(err)
	}
	_, nodeErr := exec.LookPath("node")
	_, modErr := os.Stat(filepath.Join(dir, "node_modules", "sio-latest"))
	if nodeErr != nil || modErr != nil {
		testdeps.Missing(t, "node or e2e/node_modules missing (run: npm ci --prefix e2e)")
	}
	return dir
}

// runClient runs one scenario with the real JS client.
func runClient(t testing.TB, sc scenario) *result {
	t.Helper()
	return startClient(t, sc).wait(t)
}

// pendingClient is a scenario running in the background.
type pendingClient chan clientOutcome

// waitLetIn waits until the gateway has let in n sockets. A socket's
// CONNECT reply leaves before the server takes it up, so the server may
// take up sockets in another order than they connect: a test that needs
// one let in before the next comes waits for it.
func (g *gateway) waitLetIn(t *testing.T, n int) {
	t.Helper()
	waitfor.Cond(t, fmt.Sprintf("%d sockets let in", n), func() bool {
		return strings.Count(g.logs.String(), `msg="socket connected"`) >= n
	})
}

type clientOutcome struct {
	r   *result
	err error
}

// startClient starts a scenario and returns at once; wait collects it.
// Only wait, on the test goroutine, may fail the test. Unlike client.mjs,
// these tests wait for connection-ready only when they set WaitReady.
func startClient(t testing.TB, sc scenario) pendingClient {
	t.Helper()
	dir := e2eDir(t)
	if sc.Client == "" {
		sc.Client = "sio-latest"
	}
	if sc.WaitReady == nil {
		sc.WaitReady = sioclient.Bool(false)
	}
	done := make(pendingClient, 1)
	go func() {
		r, err := sioclient.Run(dir, sc)
		done <- clientOutcome{r, err}
	}()
	return done
}

func (p pendingClient) wait(t testing.TB) *result {
	t.Helper()
	o := <-p
	if o.err != nil {
		t.Fatal(o.err)
	}
	return o.r
}

// prompt is the test user's shell prompt (see sshdtest).
const prompt = `alfresco-test\$ `

// echoSteps types a unique echo command and waits for its output line.
func echoSteps(tag string) []step {
	return []step{
		{Send: "echo hello-" + tag + "-$((6*7))\n"},
		{Expect: "hello-" + tag + "-42\r\n"},
	}
}

func transportName(ts []string) string { return strings.Join(ts, "+") }

func clientMatrix() []scenario {
	var out []scenario
	for _, c := range []string{"sio-4.0.1", "sio-latest"} {
		for _, ts := range [][]string{{"polling", "websocket"}, {"websocket"}} {
			out = append(out, scenario{Client: c, Transports: ts})
		}
	}
	return out
}

func describe(sc scenario) string {
	return fmt.Sprintf("%s/%s", sc.Client, transportName(sc.Transports))
}

func contextWithTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

// closedPort returns a loopback port with nothing listening.
func closedPort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return port
}

// sharedDir is a temporary directory the sshd test user can read.
func sharedDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "alfresco-ssh-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// postTo sends a prepared request to url and decodes the JSON reply.
func postTo(t testing.TB, url string, r *http.Request) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(r.Method, url, r.Body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header = r.Header
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var m map[string]any
	json.NewDecoder(res.Body).Decode(&m)
	return res.StatusCode, m
}

// silentPort returns a loopback port that accepts TCP connections and never
// says a word, like a host whose sshd hangs.
func silentPort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().(*net.TCPAddr).Port
}
