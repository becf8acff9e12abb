package server

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/alfresco-ssh/alfresco-ssh/internal/nodns"
	"github.com/alfresco-ssh/alfresco-ssh/internal/sshdtest"
	"github.com/alfresco-ssh/alfresco-ssh/internal/waitfor"
	"github.com/alfresco-ssh/alfresco-ssh/policy"
	"github.com/alfresco-ssh/alfresco-ssh/sshbridge"
)

// Integration tests: the real OpenSSH sshd (internal/sshdtest), the gateway
// on a loopback port, and the real socket.io-client from npm.

func checkClosed(t *testing.T, r *result, wantText string) {
	t.Helper()
	if r.Closing == nil {
		t.Fatalf("got no closing message (events %v, %s), want one saying %q", r.Events, r.Problem(), wantText)
	}
	if !strings.Contains(r.Closing.Output, wantText) || !strings.HasPrefix(strings.TrimLeft(r.Closing.Output, "\r\n"), "\x1b[91m") {
		t.Errorf("got closing message %q, want red text containing %q", r.Closing.Output, wantText)
	}
	if r.DisconnectReason != "io server disconnect" {
		t.Errorf("got disconnect reason %q, want io server disconnect", r.DisconnectReason)
	}
}

func TestSessionClientMatrix(t *testing.T) {
	sshd := sshdtest.Start(t)
	g := startGateway(t, Config{})
	for _, sc := range clientMatrix() {
		t.Run(describe(sc), func(t *testing.T) {
			sc.URL = g.url
			sc.Start = map[string]any{"credentials_uuid": g.create(t, passwordLogin(sshd))}
			sc.ResizeBeforeStart = map[string]int{"cols": 101, "rows": 31}
			sc.WaitReady, sc.WaitEnd = waitReady, true
			sc.Steps = append([]step{{Expect: prompt}}, echoSteps("m")...)
			sc.Steps = append(sc.Steps,
				step{Send: "stty size\n"}, step{Expect: `31 101\r\n`},
				step{Emit: "resize", Data: map[string]int{"cols": 120, "rows": 40}},
				step{Send: "stty size\n"}, step{Expect: `40 120\r\n`},
				step{Send: "echo $TERM\n"}, step{Expect: `xterm-256color\r\n`},
				step{Send: "exit\n"},
			)
			r := runClient(t, sc)
			if p := r.Problem(); p != "" {
				t.Fatalf("%s; output %q", p, truncate(r.Output, 2000))
			}
			if !r.Ready {
				t.Error("got no connection-ready, want it")
			}
			if r.Closing != nil && r.Closing.Timeout {
				t.Error("got timeout true on a normal exit, want false")
			}
			checkClosed(t, r, "Connection closed")
			if want := sc.Transports[len(sc.Transports)-1]; r.Transport != want {
				t.Errorf("got transport %q, want %q", r.Transport, want)
			}
		})
	}
}

// TestResizeOrderedWithInput: a resize takes effect before the input the
// client sends after it, as it did in the Flask server (a page resizes,
// then the user runs a command that reads the size).
func TestResizeOrderedWithInput(t *testing.T) {
	sshd := sshdtest.Start(t)
	g := startGateway(t, Config{})
	steps := []step{{Expect: prompt}}
	for i := range 30 {
		rows, cols := 20+i, 70+i
		steps = append(steps,
			step{Emit: "resize", Data: map[string]int{"cols": cols, "rows": rows}},
			step{Send: "stty size\n"}, step{Expect: fmt.Sprintf(`\n%d %d\r\n`, rows, cols)})
	}
	r := runClient(t, scenario{
		URL: g.url, Transports: []string{"websocket"},
		Start:     map[string]any{"credentials_uuid": g.create(t, passwordLogin(sshd))},
		WaitReady: waitReady, WaitEnd: true,
		Steps: append(steps, step{Send: "exit\n"}),
	})
	if p := r.Problem(); p != "" {
		t.Fatalf("%s; output %q", p, truncate(r.Output, 2000))
	}
}

func TestSessionGeneration1(t *testing.T) {
	sshd := sshdtest.Start(t)
	g := startGateway(t, Config{})
	id := g.create(t, passwordLogin(sshd))
	r := runClient(t, scenario{
		URL: g.url, Transports: []string{"websocket"},
		Start:             map[string]any{"create_session_id": id},
		ResizeBeforeStart: map[string]int{"cols": 90, "rows": 20},
		WaitReady:         waitReady, WaitEnd: true,
		Steps: append(echoSteps("gen1"), step{Send: "exit\n"}),
	})
	if p := r.Problem(); p != "" {
		t.Fatal(p)
	}
	checkClosed(t, r, "Connection closed")
}

func TestSessionKeys(t *testing.T) {
	sshd := sshdtest.Start(t)
	g := startGateway(t, Config{})
	for _, kind := range sshdtest.KeyKinds() {
		t.Run(kind, func(t *testing.T) {
			req := multipartRequest(t, map[string]string{
				"hostname": sshd.Host, "port": fmt.Sprint(sshd.Port), "username": sshd.User,
			}, string(sshd.Key(t, kind)))
			res, m := postTo(t, g.url+"/create-credentials", req)
			if res != 200 {
				t.Fatalf("got %d %v, want 200", res, m)
			}
			r := runClient(t, scenario{
				URL: g.url, Transports: []string{"websocket"},
				Start:     map[string]any{"credentials_uuid": m["connection_uuid"]},
				WaitReady: waitReady, WaitEnd: true,
				Steps: append(echoSteps(kind), step{Send: "exit\n"}),
			})
			if p := r.Problem(); p != "" {
				t.Fatal(p)
			}
			checkClosed(t, r, "Connection closed")
		})
	}
}

func TestSessionFailures(t *testing.T) {
	sshd := sshdtest.Start(t)
	g := startGateway(t, Config{})
	short := startGateway(t, Config{CredentialsTTL: 200 * time.Millisecond})
	quick := startGateway(t, Config{SSH: sshbridge.Config{Timeout: time.Second}})
	// A machine whose DNS server does not answer: the lookup runs out of
	// time, which is still "host not found", not "timed out".
	noDNS := startGateway(t, Config{SSH: sshbridge.Config{Timeout: time.Second},
		Targets: policy.NewTargetPolicy(nil, nil, nodns.Silent(t))})

	wrong := passwordLogin(sshd)
	wrong["password"] = "wrong-" + sshd.Password
	expired := short.create(t, passwordLogin(sshd))
	used := g.create(t, passwordLogin(sshd))
	first := runClient(t, scenario{URL: g.url, Transports: []string{"websocket"},
		Start: map[string]any{"credentials_uuid": used}, WaitReady: waitReady, WaitEnd: true,
		Steps: []step{{Send: "exit\n"}}})
	if p := first.Problem(); p != "" || !first.Ready {
		t.Fatalf("first use: %s, ready %v", p, first.Ready)
	}
	waitfor.Cond(t, "credentials to expire", func() bool { ok, _ := short.srv.store.Has(t.Context(), expired); return !ok })

	refused := map[string]any{"hostname": "127.0.0.1", "port": closedPort(t), "username": "u", "password": "p"}
	nowhere := map[string]any{"hostname": "no-such-host.invalid", "username": "u", "password": "p"} // RFC 2606
	fresh := func(body map[string]any) func() string { return func() string { return g.create(t, body) } }
	same := func(id string) func() string { return func() string { return id } }
	tests := []struct {
		name string
		id   func() string
		want string
		gw   *gateway // default g
	}{
		{"wrong password", fresh(wrong), "authentication failed", nil},
		{"unknown", same("0c2a6f0e-6f77-4b0c-9d0b-1f3c2a9f8e11"), "unknown, expired or already used", nil},
		{"reused", same(used), "unknown, expired or already used", nil},
		{"expired", same(expired), "unknown, expired or already used", short},
		{"refused", fresh(refused), "connection refused", nil},
		{"timed out", func() string {
			return quick.create(t, map[string]any{"hostname": "127.0.0.1", "port": silentPort(t), "username": "u", "password": "p"})
		}, "timed out", quick},
		{"host not found", fresh(nowhere), "host not found", nil},
		{"host not found without DNS", func() string { return noDNS.create(t, nowhere) }, "host not found", noDNS},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, sc := range []scenario{{Transports: []string{"websocket"}}, {Transports: []string{"polling"}}} {
				gw := g
				if tt.gw != nil {
					gw = tt.gw
				}
				sc.URL, sc.Start, sc.WaitEnd = gw.url, map[string]any{"credentials_uuid": tt.id()}, true
				r := runClient(t, sc)
				if r.Ready {
					t.Error("got connection-ready, want none")
				}
				checkClosed(t, r, tt.want)
			}
		})
	}
	if strings.Contains(g.logs.String(), wrong["password"].(string)) {
		t.Error("the gateway log contains the password")
	}
}

func TestSessionTimeoutEvent(t *testing.T) {
	sshd := sshdtest.Start(t)
	g := startGateway(t, Config{})
	r := runClient(t, scenario{URL: g.url, Transports: []string{"websocket"},
		Start: map[string]any{"credentials_uuid": g.create(t, passwordLogin(sshd))}, WaitReady: waitReady, WaitEnd: true,
		Steps: []step{{Expect: prompt}, {Emit: "timeout"}}})
	if p := r.Problem(); p != "" {
		t.Fatal(p)
	}
	checkClosed(t, r, "inactivity")
	if !r.Closing.Timeout {
		t.Error("got timeout false, want true")
	}
}

// TestSessionHostKeys: a pinned key that does not match, and a host that
// is not in known_hosts, are refused with a message naming the host and the
// fingerprint it presented; a matching pin works.
func TestSessionHostKeys(t *testing.T) {
	sshd := sshdtest.Start(t)
	dir := t.TempDir()
	otherHost := filepath.Join(dir, "known_hosts")
	// A known_hosts file that knows another key for this host.
	other := sshdtest.Start(t)
	if err := os.WriteFile(otherHost, []byte(strings.ReplaceAll(string(other.KnownHosts()),
		fmt.Sprintf("]:%d ", other.Port), fmt.Sprintf("]:%d ", sshd.Port))), 0o600); err != nil {
		t.Fatal(err)
	}
	knownHosts, err := sshbridge.NewHostKeys(sshbridge.PolicyKnownHosts, otherHost, nil)
	if err != nil {
		t.Fatal(err)
	}
	good := ssh.FingerprintSHA256(sshd.HostKeys[0])
	bad := ssh.FingerprintSHA256(other.HostKeys[0])
	tests := []struct {
		name     string
		hostKeys *sshbridge.HostKeys
		pin      string
		want     string // empty: the session works
	}{
		{"pin matches", nil, good, ""},
		{"pin mismatch", nil, bad, "does not match"},
		{"changed key under known-hosts", knownHosts, "", "changed"},
		{"pin beats known-hosts", knownHosts, good, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := startGateway(t, Config{SSH: sshbridge.Config{HostKeys: tt.hostKeys}})
			body := passwordLogin(sshd)
			if tt.pin != "" {
				body["host_key"] = tt.pin
			}
			sc := scenario{URL: g.url, Transports: []string{"websocket"}, WaitEnd: true,
				Start: map[string]any{"credentials_uuid": g.create(t, body)}}
			if tt.want == "" {
				sc.WaitReady, sc.Steps = waitReady, append(echoSteps("pin"), step{Send: "exit\n"})
			}
			r := runClient(t, sc)
			if tt.want == "" {
				if p := r.Problem(); p != "" {
					t.Fatal(p)
				}
				checkClosed(t, r, "Connection closed")
				return
			}
			checkClosed(t, r, tt.want)
			if !strings.Contains(r.Closing.Output, "127.0.0.1") || !strings.Contains(r.Closing.Output, "SHA256:") {
				t.Errorf("got %q, want the host and the fingerprint it presented", r.Closing.Output)
			}
		})
	}
}

// TestSessionServerLimits: the server's own idle timeout and maximum
// session duration end terminals with their reasons.
func TestSessionServerLimits(t *testing.T) {
	sshd := sshdtest.Start(t)
	tests := []struct {
		name        string
		cfg         Config
		steps       []step
		want        string
		wantTimeout bool
	}{
		// Output for longer than the idle limit keeps the session alive;
		// then it goes quiet and ends.
		{"idle", Config{IdleTimeout: 2 * time.Second},
			[]step{{Expect: prompt}, {Send: "for i in $(seq 15); do echo tick-$i; sleep 0.2; done\n"}, {Expect: "tick-15\r\n", TimeoutMs: 20000}},
			"inactivity", true},
		{"lifetime", Config{MaxSessionDuration: 3 * time.Second}, []step{{Expect: prompt}}, "maximum session duration", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := startGateway(t, tt.cfg)
			r := runClient(t, scenario{URL: g.url, Transports: []string{"websocket"}, WaitReady: waitReady, WaitEnd: true,
				Start: map[string]any{"credentials_uuid": g.create(t, passwordLogin(sshd))}, Steps: tt.steps})
			if p := r.Problem(); p != "" {
				t.Fatal(p)
			}
			checkClosed(t, r, tt.want)
			if r.Closing.Timeout != tt.wantTimeout {
				t.Errorf("got timeout %v, want %v", r.Closing.Timeout, tt.wantTimeout)
			}
		})
	}
}

// TestSessionBadEvents sends events out of order and of the wrong shape
// before and during a session; the socket must stay usable.
func TestSessionBadEvents(t *testing.T) {
	sshd := sshdtest.Start(t)
	g := startGateway(t, Config{})
	id := g.create(t, passwordLogin(sshd))
	r := runClient(t, scenario{URL: g.url, Transports: []string{"polling", "websocket"}, WaitEnd: true,
		Steps: append([]step{
			{Emit: "ssh-input", Data: map[string]any{"input": "echo early\n"}},
			{Emit: "ssh-input", Data: 42},
			{Emit: "resize", Data: map[string]any{"cols": 1e9, "rows": -3}},
			{Emit: "resize", Data: "80x24"},
			{Emit: "no-such-event", Data: map[string]any{}},
			{Emit: "resize", Data: map[string]int{"cols": 77, "rows": 22}},
			{Emit: "start-session", Data: map[string]any{"credentials_uuid": id}},
			{Expect: prompt},
			{Emit: "start-session", Data: map[string]any{"credentials_uuid": id}},
			{Emit: "ssh-input", Data: map[string]any{"input": []int{1}}},
			{Send: "stty size\n"}, {Expect: `22 77\r\n`},
		}, append(echoSteps("bad"), step{Send: "exit\n"})...)})
	if p := r.Problem(); p != "" {
		t.Fatalf("%s; output %q", p, r.Output)
	}
	if strings.Contains(r.Output, "early") {
		t.Error("got input sent before start-session executed, want it dropped")
	}
	checkClosed(t, r, "Connection closed")
}

func TestSessionLargeOutput(t *testing.T) {
	sshd := sshdtest.Start(t)
	g := startGateway(t, Config{})
	dir := sharedDir(t)

	// 10 MB of printable lines, and a UTF-8 stream dense with multi-byte
	// characters so read boundaries fall inside them.
	rng := rand.New(rand.NewPCG(3, 4))
	var ascii, multi strings.Builder
	for ascii.Len() < 10<<20 {
		line := make([]byte, 100)
		for i := range line {
			line[i] = byte('!' + rng.IntN(94))
		}
		ascii.Write(line)
		ascii.WriteByte('\n')
	}
	glyphs := []string{"é", "世", "界", "🙂", "┌", "─", "┐", "ж", "a"}
	for multi.Len() < 2<<20 {
		for range 60 {
			multi.WriteString(glyphs[rng.IntN(len(glyphs))])
		}
		multi.WriteByte('\n')
	}
	for name, content := range map[string]string{"ascii.txt": ascii.String(), "utf8.txt": multi.String()} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, name)
			if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
			for _, sc := range []scenario{{Transports: []string{"websocket"}}, {Transports: []string{"polling"}}} {
				sc.URL, sc.WaitReady, sc.WaitEnd, sc.TimeoutMs = g.url, waitReady, true, 120000
				sc.Start = map[string]any{"credentials_uuid": g.create(t, passwordLogin(sshd))}
				sc.Steps = []step{
					{Expect: prompt},
					{Send: "stty -echo; echo BEGIN; cat " + path + "; echo END\n"},
					{Expect: "END\r\n", TimeoutMs: 110000},
					{Send: "exit\n"},
				}
				r := runClient(t, sc)
				if p := r.Problem(); p != "" {
					t.Fatalf("%s: %s", describe(sc), p)
				}
				_, after, ok1 := strings.Cut(r.Output, "BEGIN\r\n")
				got, _, ok2 := strings.Cut(after, "END\r\n")
				if !ok1 || !ok2 {
					t.Fatalf("%s: markers not found in %d bytes of output", describe(sc), len(r.Output))
				}
				got = strings.ReplaceAll(got, "\r\n", "\n")
				if got != content {
					t.Errorf("%s: got %d bytes (sha256 %s), want the file's %d bytes (sha256 %s), byte-exact; U+FFFD count %d",
						describe(sc), len(got), digest(got), len(content), digest(content), strings.Count(got, "\uFFFD"))
				}
				t.Logf("%s: %d bytes in %d ssh-output messages", describe(sc), len(got), r.OutputEvents)
			}
		})
	}
}

func TestSessionLargePaste(t *testing.T) {
	sshd := sshdtest.Start(t)
	g := startGateway(t, Config{})
	const n = 1 << 20
	r := runClient(t, scenario{URL: g.url, Transports: []string{"websocket"}, WaitReady: waitReady, WaitEnd: true, TimeoutMs: 120000,
		Start: map[string]any{"credentials_uuid": g.create(t, passwordLogin(sshd))},
		Steps: []step{
			{Expect: prompt},
			// The tty is raw: the kernel's canonical line discipline under a
			// megabyte of input sometimes ends the remote shell (seen with a
			// plain x/crypto client too), which is not what this tests.
			{Send: fmt.Sprintf("stty raw -echo; echo PASTE-$((1+1))-READY; head -c %d | sha256sum; stty sane\n", n)},
			{Expect: "PASTE-2-READY"},
			{SendBytes: n, Seed: 9},
			{Expect: `[0-9a-f]{64}  -`, TimeoutMs: 110000},
			{Send: "exit\n"},
		}})
	if p := r.Problem(); p != "" {
		t.Fatal(p)
	}
	_, after, _ := strings.Cut(r.Output, "PASTE-2-READY")
	got := regexp.MustCompile(`[0-9a-f]{64}`).FindString(after)
	if got != r.SentSha256 {
		t.Errorf("remote got sha256 %s, want %s (the pasted %d bytes, intact and in order)", got, r.SentSha256, n)
	}
}

// TestSessionFloodIsolation runs a session that floods output while another
// session echoes: the echo must keep working, and when the flooding client
// leaves (without ending its shell) its SSH session must end.
func TestSessionFloodIsolation(t *testing.T) {
	sshd := sshdtest.Start(t)
	g := startGateway(t, Config{})
	// No exit and no WaitEnd: the client leaves after the flood, its shell
	// still running. (The marker is computed, so that the echo of the
	// command line does not match it.)
	flooding := startClient(t, scenario{URL: g.url, Transports: []string{"websocket"}, WaitReady: waitReady, TimeoutMs: 60000,
		Start: map[string]any{"credentials_uuid": g.create(t, passwordLogin(sshd))},
		Steps: []step{{Expect: prompt}, {Send: "timeout 4 yes flood; echo FLOOD-$((6*7))\n"}, {Expect: "FLOOD-42\r\n", TimeoutMs: 50000}}})
	var steps []step
	for i := range 20 {
		steps = append(steps, echoSteps(fmt.Sprint(i))...)
	}
	echo := runClient(t, scenario{URL: g.url, Transports: []string{"websocket"}, WaitReady: waitReady, WaitEnd: true,
		Start: map[string]any{"credentials_uuid": g.create(t, passwordLogin(sshd))},
		Steps: append(append([]step{{Expect: prompt}}, steps...), step{Send: "exit\n"})})
	flood := flooding.wait(t)
	if p := echo.Problem(); p != "" {
		t.Errorf("echo session: %s", p)
	}
	if p := flood.Problem(); p != "" {
		t.Errorf("flood session: %s", p)
	}
	if !strings.Contains(flood.Output, "flood\r\nflood\r\n") {
		t.Error("flood session printed no flood")
	}
	// Both SSH sessions are gone: the echo's shell exited, the flooder's
	// was closed by the gateway when its client left.
	if err := sshd.WaitNoChildren(10 * time.Second); err != nil {
		t.Errorf("after the flooding client left: %v", err)
	}
	if !strings.Contains(g.logs.String(), `reason=client_gone`) {
		t.Error("got no terminal ended for a client that left, want the flooder's")
	}
}

// TestClientGoneClosesSSH: a client that disconnects mid-session leaves no
// SSH session behind.
func TestClientGoneClosesSSH(t *testing.T) {
	sshd := sshdtest.Start(t)
	g := startGateway(t, Config{})
	r := runClient(t, scenario{URL: g.url, Transports: []string{"websocket"}, WaitReady: waitReady,
		Start: map[string]any{"credentials_uuid": g.create(t, passwordLogin(sshd))},
		Steps: []step{{Expect: prompt}, {Send: "sleep 600\n"}}})
	if p := r.Problem(); p != "" {
		t.Fatal(p)
	}
	if err := sshd.WaitNoChildren(10 * time.Second); err != nil {
		t.Errorf("after the client left: %v", err)
	}
	waitfor.Cond(t, "the terminal to be forgotten", func() bool {
		return len(g.srv.terms.List()) == 0
	})
}

// TestShutdownTellsClients: Shutdown sends the closing message to live
// terminals and closes their SSH sessions.
func TestShutdownTellsClients(t *testing.T) {
	sshd := sshdtest.Start(t)
	g := startGateway(t, Config{})
	done := startClient(t, scenario{URL: g.url, Transports: []string{"websocket"}, WaitReady: waitReady, WaitEnd: true,
		Start: map[string]any{"credentials_uuid": g.create(t, passwordLogin(sshd))},
		Steps: []step{{Expect: prompt}, {Send: "echo READY-FOR-SHUTDOWN\n"}, {Expect: "READY-FOR-SHUTDOWN\r\n"}}})
	waitfor.Cond(t, "the session to run", func() bool { return strings.Contains(g.logs.String(), "terminal session started") })
	waitfor.Cond(t, "the prompt echo", func() bool { return sshd.Children() > 0 })
	ctx, cancel := contextWithTimeout(10 * time.Second)
	defer cancel()
	if err := g.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	r := done.wait(t)
	checkClosed(t, r, "shutting down")
	if err := sshd.WaitNoChildren(5 * time.Second); err != nil {
		t.Error(err)
	}
}

func digest(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:8])
}
