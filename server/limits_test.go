package server

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/alfresco-ssh/alfresco-ssh/internal/sioclient"
	"github.com/alfresco-ssh/alfresco-ssh/internal/sshdtest"
	"github.com/alfresco-ssh/alfresco-ssh/policy"
	"github.com/alfresco-ssh/alfresco-ssh/sshbridge"
)

// TestLoginBackoffParallel is the review's probe: wrong passwords sent all
// at once must not reach the SSH server more often than --auth-failures
// allows, because attempts in flight count.
func TestLoginBackoffParallel(t *testing.T) {
	const parallel, limit = 12, 2
	sshd := sshdtest.Start(t, sshdtest.WithConfig("LogLevel VERBOSE"))
	g := startGateway(t, Config{AuthFailures: limit})
	wrong := passwordLogin(sshd)
	wrong["password"] = "not-" + sshd.Password
	scs := make([]scenario, parallel)
	for i := range scs {
		scs[i].Start = map[string]any{"credentials_uuid": g.create(t, wrong)}
	}
	results, _, err := sioclient.RunMany(e2eDir(t), scenario{URL: g.url, Transports: []string{"websocket"},
		WaitReady: sioclient.Bool(false), WaitEnd: true}, scs)
	if err != nil {
		t.Fatal(err)
	}
	failed, refused := 0, 0
	for i, r := range results {
		switch {
		case r.Closing == nil:
			t.Errorf("client %d: got no closing message (%s)", i, r.Problem())
		case strings.Contains(r.Closing.Output, "authentication failed"):
			failed++
		case strings.Contains(r.Closing.Output, "too many"):
			refused++
		default:
			t.Errorf("client %d: got closing message %q, want authentication failed or a refusal", i, r.Closing.Output)
		}
	}
	// sshd's processes for a connection log before they exit.
	if err := sshd.WaitNoChildren(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	reached := bytes.Count(sshd.Log(), []byte("Failed password for"))
	t.Logf("%d parallel wrong passwords with --auth-failures %d: %d reached sshd, %d refused by the gateway", parallel, limit, reached, refused)
	if reached > limit || failed > limit {
		t.Errorf("got %d wrong passwords at sshd (%d clients told authentication failed), want at most %d", reached, failed, limit)
	}
	if failed+refused != parallel {
		t.Errorf("got %d failed and %d refused of %d", failed, refused, parallel)
	}
}

// TestLoginBackoffSuccessProvesOnlyItsPair: a successful login forgets the
// client's failures on that account only, so logging in to an account of
// one's own does not reset a guessing client.
func TestLoginBackoffSuccessProvesOnlyItsPair(t *testing.T) {
	sshd := sshdtest.Start(t)
	g := startGateway(t, Config{AuthFailures: 3})
	// Two accounts on the same sshd: the back-off knows them by name.
	right := passwordLogin(sshd)
	other := passwordLogin(sshd)
	other["hostname"] = "localhost"
	wrong := func(body map[string]any) map[string]any {
		w := make(map[string]any, len(body))
		for k, v := range body {
			w[k] = v
		}
		w["password"] = "not-" + sshd.Password
		return w
	}
	login := func(body map[string]any, want string) {
		t.Helper()
		r := runClient(t, scenario{URL: g.url, Transports: []string{"websocket"}, WaitReady: waitReady, WaitEnd: true,
			Start: map[string]any{"credentials_uuid": g.create(t, body)},
			Steps: []step{{Expect: prompt}, {Send: "exit\n"}}})
		if want == "" {
			if p := r.Problem(); p != "" || !r.Ready {
				t.Fatalf("login: got %s (ready %v), want a session", p, r.Ready)
			}
			return
		}
		checkClosed(t, r, want)
	}
	login(wrong(right), "authentication failed")
	login(wrong(other), "authentication failed")
	login(right, "")                             // forgets the first failure only
	login(wrong(other), "authentication failed") // the client's second failure
	login(wrong(right), "authentication failed") // its third: blocked
	login(other, "too many failed logins from your address")
}

// TestClientKeyIPv6 checks that every per-client limit keys an IPv6 client
// by its /64 (or the configured prefix).
func TestClientKeyIPv6(t *testing.T) {
	create := func(s *Server, remote string) int {
		t.Helper()
		r := jsonRequest(`{"hostname":"h","username":"u","password":"p"}`)
		r.RemoteAddr = remote
		res, _, _ := do(t, s, r)
		return res.StatusCode
	}
	t.Run("create rate", func(t *testing.T) {
		s := newTestServer(t, Config{CreatesPerMinute: 1})
		for _, tt := range []struct {
			remote string
			want   int
		}{
			{"[2001:db8:1:2::1]:1000", 200},
			{"[2001:db8:1:2:ffff::9]:1000", 429}, // same /64
			{"[2001:db8:1:3::1]:1000", 200},
			{"192.0.2.1:1000", 200},
			{"192.0.2.2:1000", 200},
		} {
			if got := create(s, tt.remote); got != tt.want {
				t.Errorf("create from %s: got %d, want %d", tt.remote, got, tt.want)
			}
		}
		wide := newTestServer(t, Config{CreatesPerMinute: 1, ClientPrefix: policy.ClientPrefix{V4: 24, V6: 128}})
		for _, tt := range []struct {
			remote string
			want   int
		}{
			{"[2001:db8:1:2::1]:1000", 200},
			{"[2001:db8:1:2::2]:1000", 200},
			{"192.0.2.1:1000", 200},
			{"192.0.2.2:1000", 429}, // same /24
		} {
			if got := create(wide, tt.remote); got != tt.want {
				t.Errorf("--client-prefix-v4 24 --client-prefix-v6 128, create from %s: got %d, want %d", tt.remote, got, tt.want)
			}
		}
	})
	target := sshbridge.Target{Host: "192.0.2.10", Port: 22, User: "u"}
	t.Run("sessions per client", func(t *testing.T) {
		s := newTestServer(t, Config{MaxSessionsPerClient: 1})
		release, err := s.connectClient("2001:db8::1")
		if err != nil {
			t.Fatal(err)
		}
		defer release()
		if _, err := s.connectClient("2001:db8::2"); !errors.Is(err, policy.ErrTooManyClientSessions) {
			t.Errorf("second session from the same /64: got %v, want %v", err, policy.ErrTooManyClientSessions)
		}
		release, err = s.connectClient("2001:db8:0:1::1")
		if err != nil {
			t.Fatalf("session from another /64: %v", err)
		}
		release()
	})
	t.Run("login back-off", func(t *testing.T) {
		s := newTestServer(t, Config{AuthFailures: 1})
		login, err := s.admit(t.Context(), "2001:db8::1", target)
		if err != nil {
			t.Fatal(err)
		}
		s.endLogin(login, policy.Failed)
		other := target
		other.User = "someone-else"
		var refused *policy.LoginRefusedError
		if _, err := s.admit(t.Context(), "2001:db8::2", other); !errors.As(err, &refused) || refused.Account {
			t.Errorf("login from the same /64 after its failure: got %v, want the client refused", err)
		}
		login, err = s.admit(t.Context(), "2001:db8:0:1::1", other)
		if err != nil {
			t.Fatalf("login from another /64: %v", err)
		}
		s.endLogin(login, policy.Abandoned)
	})
}
