package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/alfresco-ssh/alfresco-ssh/internal/servicetest"
	"github.com/alfresco-ssh/alfresco-ssh/internal/sshdtest"
	"github.com/alfresco-ssh/alfresco-ssh/metrics"
)

// Metrics and the audit log after a known sequence of sessions: exact
// counts, exact lines, no secret.

var metricsAddr = regexp.MustCompile(`msg="metrics listening" addr=(\S+)`)

// metricsURL is the gateway's /metrics address, from its log.
func (g *gateway) metricsURL(t testing.TB) string {
	t.Helper()
	var url string
	waitForCond(t, "the metrics listener", 10*time.Second, func() bool {
		if m := metricsAddr.FindStringSubmatch(g.logs.String()); m != nil {
			url = "http://" + m[1] + "/metrics"
		}
		return url != ""
	})
	return url
}

// ourMetrics scrapes the gateway's own samples (no Go or process ones)
// and the whole text.
func ourMetrics(t testing.TB, url string) (ours, all string) {
	t.Helper()
	status, body := getStatus(t, url)
	if status != 200 {
		t.Fatalf("GET %s: got %d, want 200", url, status)
	}
	var b strings.Builder
	for line := range strings.Lines(body) {
		if strings.HasPrefix(line, "alfresco_ssh_") && !strings.HasPrefix(line, "alfresco_ssh_http_requests_total") &&
			!strings.HasPrefix(line, "alfresco_ssh_build_info") && !strings.Contains(line, "_seconds_bucket") &&
			!strings.Contains(line, "_seconds_sum") {
			b.WriteString(line)
		}
	}
	return b.String(), body
}

// auditLines reads the audit log, each line decoded.
func auditLines(t testing.TB, path string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var lines []map[string]any
	for line := range strings.Lines(string(b)) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("audit line %q: %v", line, err)
		}
		lines = append(lines, m)
	}
	return lines
}

func TestMetricsAndAuditOfKnownSessions(t *testing.T) {
	sshd := sshdtest.Start(t)
	auditPath := filepath.Join(t.TempDir(), "audit.log")
	g := startGateway(t, "--metrics-addr", "127.0.0.1:0", "--audit-log", auditPath, "--auth-failures", "1")
	scrapeURL := g.metricsURL(t)

	typed := "echo ok-$((6*7))\n" + "exit\n"
	good := g.createCredentials(t, login(sshd))
	r := runClient(t, scenario{URL: g.url, Start: map[string]any{"credentials_uuid": good}, WaitEnd: true,
		Steps: []step{{Expect: prompt, TimeoutMs: 20000}, {Send: "echo ok-$((6*7))\n"}, {Expect: "ok-42\r\n"}, {Send: "exit\n"}}})
	checkEnded(t, r, "Connection closed")

	// A client that leaves without exit, once the shell has read what it
	// typed (the next prompt), so that the input bytes are counted.
	gone := g.createCredentials(t, login(sshd))
	r = runClient(t, scenario{URL: g.url, Start: map[string]any{"credentials_uuid": gone},
		Steps: []step{{Expect: prompt, TimeoutMs: 20000}, {Send: "true\n"}, {Expect: prompt}}})
	if p := r.Problem(); p != "" {
		t.Fatal(p)
	}
	typed += "true\n"
	waitForCond(t, "the end of the session the client left", 10*time.Second, func() bool {
		return len(auditLines(t, auditPath)) == 4
	})

	// Failures; after the authentication failure, the back-off (one
	// failure allowed) refuses the next login.
	wrong := login(sshd)
	wrong["password"] = "not-" + sshd.Password
	failures := []struct {
		body map[string]any
		want string
	}{
		{map[string]any{"hostname": "127.0.0.1", "port": 1, "username": "x", "password": "secret-" + sshd.Password}, "connection refused"},
		{nil, "credentials are unknown"},
		{wrong, "authentication failed"},
		{login(sshd), "Connection refused"},
	}
	var ids []string
	for _, f := range failures {
		id := "9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d" // never created
		if f.body != nil {
			id = g.createCredentials(t, f.body)
		}
		ids = append(ids, id)
		r := runClient(t, scenario{URL: g.url, Start: map[string]any{"credentials_uuid": id}, WaitReady: new(bool), WaitEnd: true})
		checkEnded(t, r, f.want)
	}

	ended := map[string]int{"exit": 1, "client_gone": 1}
	started := map[string]int{"ok": 2, "auth_failed": 1, "connect_failed": 1, "denied": 1, "invalid_credentials": 1}
	var w strings.Builder
	w.WriteString("alfresco_ssh_credentials_pending 0\nalfresco_ssh_sessions_active 0\n")
	for _, r := range slices.Sorted(slices.Values(metrics.Reasons)) {
		fmt.Fprintf(&w, "alfresco_ssh_sessions_ended_total{reason=%q} %d\n", r, ended[r])
	}
	for _, r := range slices.Sorted(slices.Values(metrics.Results)) {
		fmt.Fprintf(&w, "alfresco_ssh_sessions_started_total{result=%q} %d\n", r, started[r])
	}
	fmt.Fprintf(&w, "alfresco_ssh_ssh_connect_seconds_count 2\nalfresco_ssh_terminal_bytes_total{direction=\"in\"} %d\n", len(typed))
	want := w.String()
	var got, all string
	waitForCond(t, "the client's departure in the metrics", 10*time.Second, func() bool {
		got, all = ourMetrics(t, scrapeURL)
		return strings.Contains(got, "alfresco_ssh_sessions_active 0\n")
	})
	// Output bytes depend on the shell: only their presence is checked.
	out := regexp.MustCompile(`(?m)^alfresco_ssh_terminal_bytes_total\{direction="out"\} ([1-9][0-9]*)\n`)
	if !out.MatchString(got) {
		t.Errorf("got no positive output byte count in:\n%s", got)
	}
	if got = out.ReplaceAllString(got, ""); got != want {
		t.Errorf("got metrics:\n%s\nwant:\n%s", got, want)
	}

	lines := auditLines(t, auditPath)
	wantLines := []struct{ event, target, user, auth, reason string }{
		{"session_start", sshd.Addr, sshd.User, "password", ""},
		{"session_end", sshd.Addr, sshd.User, "password", "exit"},
		{"session_start", sshd.Addr, sshd.User, "password", ""},
		{"session_end", sshd.Addr, sshd.User, "password", "client_gone"},
		{"session_failed", "127.0.0.1:1", "x", "", "connect_failed"},
		{"session_failed", "", "", "", "invalid_credentials"},
		{"session_failed", sshd.Addr, sshd.User, "", "auth_failed"},
		{"session_failed", sshd.Addr, sshd.User, "", "denied"},
	}
	if len(lines) != len(wantLines) {
		t.Fatalf("got %d audit lines, want %d:\n%v", len(lines), len(wantLines), lines)
	}
	for i, w := range wantLines {
		l := lines[i]
		field := func(k string) string { s, _ := l[k].(string); return s }
		got := strings.Join([]string{field("event"), field("target"), field("user"), field("auth"), field("reason"), field("client")}, " ")
		if exp := strings.Join([]string{w.event, w.target, w.user, w.auth, w.reason, "127.0.0.1"}, " "); got != exp {
			t.Errorf("audit line %d: got %q, want %q (%v)", i, got, exp, l)
		}
		hostKey, _ := l["host_key"].(string)
		if started := w.auth != ""; started != strings.HasPrefix(hostKey, "SHA256:") {
			t.Errorf("audit line %d: got host_key %q", i, hostKey)
		}
		if _, err := time.Parse(time.RFC3339Nano, fmt.Sprint(l["time"])); err != nil {
			t.Errorf("audit line %d: time: %v", i, err)
		}
	}
	first := lines[1]
	if lines[0]["session"] != first["session"] || first["bytes_in"] != float64(len("echo ok-$((6*7))\nexit\n")) ||
		first["bytes_out"].(float64) <= 0 || first["duration_s"].(float64) <= 0 {
		t.Errorf("got session_end %v after %v, want the same session, bytes and a duration", first, lines[0])
	}
	raw, _ := os.ReadFile(auditPath)
	for _, secret := range append(ids, good, gone, sshd.Password) {
		if bytes.Contains(raw, []byte(secret)) {
			t.Errorf("the audit log holds a secret (%.8s…)", secret)
		}
	}

	t.Run("SIGHUP reopens the file", func(t *testing.T) {
		if err := os.Rename(auditPath, auditPath+".1"); err != nil {
			t.Fatal(err)
		}
		g.cmd.Process.Signal(syscall.SIGHUP)
		waitForCond(t, "the reopen", 10*time.Second, func() bool { return g.count(`"audit log reopened"`) == 1 })
		id := g.createCredentials(t, map[string]any{"hostname": "127.0.0.1", "port": 1, "username": "x", "password": "y"})
		runClient(t, scenario{URL: g.url, Start: map[string]any{"credentials_uuid": id}, WaitReady: new(bool), WaitEnd: true})
		if lines := auditLines(t, auditPath); len(lines) != 1 || lines[0]["event"] != "session_failed" {
			t.Errorf("got %v in the new file, want one session_failed line", lines)
		}
	})

	// Last: without promtool (outside CI) it skips the rest of the test.
	servicetest.CheckMetrics(t, all)
}
