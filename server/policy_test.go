package server

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alfresco-ssh/alfresco-ssh/internal/fakeclock"
	"github.com/alfresco-ssh/alfresco-ssh/internal/sshdtest"
	"github.com/alfresco-ssh/alfresco-ssh/internal/waitfor"
	"github.com/alfresco-ssh/alfresco-ssh/policy"
	"github.com/alfresco-ssh/alfresco-ssh/terminal"
)

// Tests of the gateway's policies wired end to end: each must trip at its
// number and recover afterwards.

func TestCreateRateLimit(t *testing.T) {
	clock := fakeclock.New()
	creates := policy.NewRateLimiter(2, time.Minute)
	creates.Now = clock.Now
	s := newTestServer(t, Config{Limits: policy.Limits{Creates: creates}})
	create := func() (int, string) {
		res, _, _ := do(t, s, jsonRequest(`{"hostname":"h","username":"u","password":"p"}`))
		return res.StatusCode, res.Header.Get("Retry-After")
	}
	for i := range 2 {
		if code, _ := create(); code != 200 {
			t.Fatalf("request %d: got %d, want 200", i+1, code)
		}
	}
	if code, retry := create(); code != 429 || retry != "30" {
		t.Fatalf("third request: got %d Retry-After %q, want 429 with 30", code, retry)
	}
	clock.Advance(30 * time.Second)
	if code, _ := create(); code != 200 {
		t.Errorf("after 30 s: got %d, want 200 again", code)
	}
}

func TestCreateTargetPolicy(t *testing.T) {
	deny, err := policy.ParseTargetRules("203.0.113.0/24, *.blocked.example")
	if err != nil {
		t.Fatal(err)
	}
	s := newTestServer(t, Config{Targets: policy.NewTargetPolicy(nil, deny, nil)})
	tests := []struct {
		host string
		want int
	}{
		{"192.0.2.10", 200},
		{"203.0.113.7", 403},
		{"169.254.169.254", 403}, // cloud metadata: denied by default
		{"fe80::1", 403},         // link-local
		{"vm.blocked.example", 403},
		{"vm.allowed.example", 200},
	}
	for _, tt := range tests {
		res, m, _ := do(t, s, jsonRequest(`{"hostname":"`+tt.host+`","username":"u","password":"p"}`))
		if res.StatusCode != tt.want {
			t.Errorf("%s: got %d %v, want %d", tt.host, res.StatusCode, m, tt.want)
		}
	}
}

// TestSessionPolicies runs real sessions into each limit.
func TestSessionPolicies(t *testing.T) {
	sshd := sshdtest.Start(t)

	t.Run("name resolving to a denied address", func(t *testing.T) {
		deny, _ := policy.ParseTargetRules("127.0.0.0/8, ::1")
		g := startGateway(t, Config{Targets: policy.NewTargetPolicy(nil, deny, nil)})
		body := passwordLogin(sshd)
		body["hostname"] = "localhost"
		r := runClient(t, scenario{URL: g.url, Transports: []string{"websocket"}, WaitEnd: true,
			Start: map[string]any{"credentials_uuid": g.create(t, body)}})
		checkClosed(t, r, "gateway's policy")
	})

	t.Run("sessions per client", func(t *testing.T) {
		g := startGateway(t, Config{MaxSessionsPerClient: 1})
		first := startClient(t, scenario{URL: g.url, Transports: []string{"websocket"}, WaitEnd: true,
			Start: map[string]any{"credentials_uuid": g.create(t, passwordLogin(sshd))},
			Steps: []step{{Expect: prompt}}})
		waitfor.Cond(t, "the first session", func() bool { return strings.Contains(g.logs.String(), "terminal session started") })
		second := runClient(t, scenario{URL: g.url, Transports: []string{"websocket"}, WaitEnd: true,
			Start: map[string]any{"credentials_uuid": g.create(t, passwordLogin(sshd))}})
		checkClosed(t, second, "too many sessions from your address")
		// End the first session, then there is room again.
		for _, info := range g.srv.terms.List() {
			if term, ok := g.srv.terms.Get(info.ID); ok {
				term.Stop(terminal.ErrInactive)
			}
		}
		if r := first.wait(t); r.Closing == nil {
			t.Errorf("first session: got no closing message (%s)", r.Problem())
		}
		third := runClient(t, scenario{URL: g.url, Transports: []string{"websocket"}, WaitReady: waitReady, WaitEnd: true,
			Start: map[string]any{"credentials_uuid": g.create(t, passwordLogin(sshd))},
			Steps: []step{{Expect: prompt}, {Send: "exit\n"}}})
		if p := third.Problem(); p != "" {
			t.Fatalf("after the first ended: %s", p)
		}
	})

	t.Run("login failures", func(t *testing.T) {
		clock := fakeclock.New()
		logins := policy.NewAuthBackoff(2, 10*time.Minute, 30*time.Second, 15*time.Minute)
		logins.Now = clock.Now
		g := startGateway(t, Config{Limits: policy.Limits{Logins: logins}})
		wrong := passwordLogin(sshd)
		wrong["password"] = "not-" + sshd.Password
		session := func(body map[string]any) *result {
			return runClient(t, scenario{URL: g.url, Transports: []string{"websocket"}, WaitEnd: true,
				Start: map[string]any{"credentials_uuid": g.create(t, body)}})
		}
		for range 2 {
			checkClosed(t, session(wrong), "authentication failed")
		}
		// Blocked now, even with the right password.
		checkClosed(t, session(passwordLogin(sshd)), "too many failed logins")
		clock.Advance(31 * time.Second)
		r := session(passwordLogin(sshd))
		if !r.Ready {
			t.Errorf("after the back-off: got %v, want the session to start", r.Closing)
		}
	})
}

func TestServeTLS(t *testing.T) {
	dir := t.TempDir()
	pair := newTestPair(t, "127.0.0.1")
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pair.certPEM, 0o600)
	os.WriteFile(keyFile, pair.keyPEM, 0o600)
	g := startGateway(t, Config{TLSCertFile: certFile, TLSKeyFile: keyFile})
	pool := x509.NewCertPool()
	pool.AddCert(pair.cert)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}}}
	defer client.CloseIdleConnections()
	res, err := client.Get(strings.Replace(g.url, "http://", "https://", 1) + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Strict-Transport-Security"), "max-age=") {
		t.Errorf("got %d, HSTS %q; want 200 with HSTS", res.StatusCode, res.Header.Get("Strict-Transport-Security"))
	}
}
