package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/alfresco-ssh/alfresco-ssh/internal/sshdtest"
)

// Socket.IO clients without a browser: every supported socket.io-client
// version over every transport, Debian's python3-socketio, and 200 clients
// at once, all against the real binary and a real sshd.

// prompt is the sshd test user's shell prompt (see sshdtest), as a regex.
const prompt = `alfresco-test\$ `

// transportCases are the transport settings every client is run with, and
// the transport each must end on.
var transportCases = []struct {
	name       string
	transports []string // nil: the client's default, polling then upgrade
	want       string
}{
	{"default", nil, "websocket"},
	{"websocket", []string{"websocket"}, "websocket"},
	{"polling", []string{"polling"}, "polling"},
}

// fullSession is a scenario with everything a session does: a size before
// start (as generation-1 pages send it), the prompt, an echo, a resize
// checked with stty, and exit.
func fullSession(g *gateway, id, tag string) scenario {
	return scenario{
		URL:               g.url,
		Start:             map[string]any{"credentials_uuid": id},
		ResizeBeforeStart: map[string]int{"cols": 101, "rows": 31},
		WaitEnd:           true,
		Steps: []step{
			{Expect: prompt, TimeoutMs: 20000},
			// The shell computes the number: the echoed command line never
			// holds the expected output.
			{Send: "echo hello-" + tag + "-$((6*7))\n"}, {Expect: "hello-" + tag + "-42\r\n"},
			{Send: "stty size\n"}, {Expect: "\n31 101\r\n"},
			{Emit: "resize", Data: map[string]int{"cols": 120, "rows": 40}},
			{Send: "stty size\n"}, {Expect: "\n40 120\r\n"},
			{Send: "exit\n"},
		},
	}
}

// checkEnded checks that the server ended the session with the red closing
// message containing want, then a namespace disconnect.
func checkEnded(t *testing.T, r *result, want string) {
	t.Helper()
	if r.Closing == nil {
		t.Fatalf("got no closing message (events %v), want one saying %q", r.Events, want)
	}
	if msg := strings.TrimLeft(r.Closing.Output, "\r\n"); !strings.HasPrefix(msg, "\x1b[91m") || !strings.Contains(msg, want) {
		t.Errorf("got closing message %q, want red text containing %q", r.Closing.Output, want)
	}
	if r.Closing.Timeout {
		t.Error("got timeout true in the closing message, want false")
	}
	if r.DisconnectReason != "io server disconnect" {
		t.Errorf("got disconnect reason %q, want io server disconnect", r.DisconnectReason)
	}
}

func checkFullSession(t *testing.T, r *result, wantTransport string) {
	t.Helper()
	if p := r.Problem(); p != "" {
		t.Fatalf("%s; output %q", p, truncate(r.Output, 2000))
	}
	if !r.Ready {
		t.Error("got no connection-ready, want it")
	}
	checkEnded(t, r, "Connection closed")
	if r.Transport != wantTransport {
		t.Errorf("got transport %q, want %q", r.Transport, wantTransport)
	}
}

func TestClientMatrix(t *testing.T) {
	e2eDir(t)
	sshd := sshdtest.Start(t)
	g := startGateway(t)
	for _, client := range []string{"sio-4.0.1", "sio-4.5.4", "sio-latest"} {
		for _, tc := range transportCases {
			t.Run(client+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				sc := fullSession(g, g.createCredentials(t, login(sshd)), strings.ReplaceAll(client, ".", "")+tc.name)
				sc.Client, sc.Transports = client, tc.transports
				r := runClient(t, sc)
				checkFullSession(t, r, tc.want)
				t.Logf("%s over %s: %d ms", client, r.Transport, r.ElapsedMs)
			})
		}
	}
}

func TestPythonClient(t *testing.T) {
	needPython(t)
	sshd := sshdtest.Start(t)
	g := startGateway(t)
	for _, tc := range transportCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sc := fullSession(g, g.createCredentials(t, login(sshd)), "py"+tc.name)
			sc.Transports = tc.transports
			r := runPython(t, sc)
			checkFullSession(t, r, tc.want)
			t.Logf("python-socketio over %s: %d ms", r.Transport, r.ElapsedMs)
		})
	}
	t.Run("generation 1", func(t *testing.T) {
		t.Parallel()
		id, _ := g.createSession(t, login(sshd))
		sc := fullSession(g, id, "pygen1")
		sc.Start = map[string]any{"create_session_id": id}
		checkFullSession(t, runPython(t, sc), "websocket")
	})
}

// TestConcurrentSessions runs 200 complete sessions at once from one Node
// process, a third on each transport setting.
func TestConcurrentSessions(t *testing.T) {
	const n = 200
	e2eDir(t)
	sshd := sshdtest.Start(t, sshdtest.WithConfig("MaxStartups 1000", "MaxSessions 10"))
	g := startGateway(t, "--debug") // its log explains a failure

	scs := make([]scenario, n)
	for i := range scs {
		scs[i] = scenario{
			Start:      map[string]any{"credentials_uuid": g.createCredentials(t, login(sshd))},
			Transports: transportCases[i%len(transportCases)].transports,
			Steps: []step{
				{Expect: prompt, TimeoutMs: 90000},
				{Send: fmt.Sprintf("echo swarm-%d-$((%d*7))\n", i, i)},
				{Expect: fmt.Sprintf("swarm-%d-%d\r\n", i, i*7), TimeoutMs: 60000},
				{Send: "exit\n"},
			},
		}
	}
	start := time.Now()
	results, elapsed := runClients(t, scenario{URL: g.url, WaitEnd: true, TimeoutMs: 150000}, scs)
	t.Logf("%d sessions at once: %v in the client (%v with process start)", n, elapsed, time.Since(start))

	failed := 0
	for i := range results {
		r := &results[i]
		p := r.Problem()
		switch {
		case p != "":
		case r.Closing == nil || !strings.Contains(r.Closing.Output, "Connection closed"):
			p = fmt.Sprintf("closing message %+v, want Connection closed", r.Closing)
		case r.DisconnectReason != "io server disconnect":
			p = fmt.Sprintf("disconnect reason %q", r.DisconnectReason)
		}
		if p != "" {
			failed++
			if failed <= 5 {
				t.Errorf("session %d (transports %v, events %v, %d ms): %s", i, scs[i].Transports, r.Events, r.ElapsedMs, p)
			}
		}
	}
	if failed > 0 {
		t.Fatalf("%d of %d sessions failed", failed, n)
	}
	// Every client got its closing message; now every SSH session must be
	// gone from sshd and from the gateway, which logs each start and end.
	if err := sshd.WaitNoChildren(30 * time.Second); err != nil {
		t.Error(err)
	}
	if got := g.count(`"terminal session started"`); got != n {
		t.Errorf("gateway logged %d sessions started, want %d", got, n)
	}
	if got := g.count(`"terminal ended"`); got != n {
		t.Errorf("gateway logged %d terminals ended, want %d", got, n)
	}
}
