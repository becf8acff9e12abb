package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/alfresco-ssh/alfresco-ssh/internal/servicetest"
	"github.com/alfresco-ssh/alfresco-ssh/internal/sshdtest"
)

// Session admin (--admin-token): list and end sessions across two nodes
// sharing a Redis, and on one node with the memory store.

const adminToken = "admin-secret-for-tests"

type adminSession struct {
	ID, Node, Client, Target, User, State string
	Started                               *time.Time
	Bytes                                 struct{ In, Out uint64 }
}

// admin sends an admin request with token ("" for none) and returns the
// status and the JSON body.
func admin(t testing.TB, method, url, token string) (int, map[string]json.RawMessage) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var body map[string]json.RawMessage
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
		t.Fatalf("%s %s: got %d with a body that is not JSON: %v", method, url, res.StatusCode, err)
	}
	return res.StatusCode, body
}

// adminList is GET /admin/sessions of g.
func adminList(t testing.TB, g *gateway) []adminSession {
	t.Helper()
	status, body := admin(t, http.MethodGet, g.url+"/admin/sessions", adminToken)
	var list []adminSession
	if status != http.StatusOK || json.Unmarshal(body["sessions"], &list) != nil {
		t.Fatalf("GET /admin/sessions: got %d %s, want 200 with sessions", status, body)
	}
	return list
}

// running returns the running sessions of list by node (the last one of
// each node: the tests run one per node).
func running(list []adminSession) map[string]adminSession {
	m := map[string]adminSession{}
	for _, s := range list {
		if s.State == "running" {
			m[s.Node] = s
		}
	}
	return m
}

func TestAdminAcrossNodes(t *testing.T) {
	sshd := sshdtest.Start(t)
	redis := servicetest.StartRedis(t)
	nodes := startNodes(t, 2, redis.URL, "--admin-token", adminToken, "--transports", "websocket")
	a, b := nodes[0], nodes[1]

	for _, tc := range []struct{ method, path, token string }{
		{http.MethodGet, "/admin/sessions", ""},
		{http.MethodGet, "/admin/sessions", "wrong"},
		{http.MethodDelete, "/admin/sessions/x", ""},
		{http.MethodDelete, "/admin/sessions/x", adminToken + "x"},
	} {
		if status, body := admin(t, tc.method, a.url+tc.path, tc.token); status != http.StatusUnauthorized ||
			string(body["error"]) != `"Missing or invalid admin token"` {
			t.Errorf("%s %s with token %q: got %d %s, want 401", tc.method, tc.path, tc.token, status, body)
		}
	}

	onA := startClient(t, ticking(a, a.createCredentials(t, login(sshd)), 1000, 100*time.Millisecond))
	onB := startClient(t, ticking(b, a.createCredentials(t, login(sshd)), 1000, 100*time.Millisecond))
	var list map[string]adminSession
	waitForCond(t, "both sessions in the list of node A", 30*time.Second, func() bool {
		list = running(adminList(t, a))
		return len(list) == 2
	})
	// Node B lists its own at once, node A's once A has published them.
	waitForCond(t, "both sessions in the list of node B", 10*time.Second, func() bool { return len(running(adminList(t, b))) == 2 })
	var sb adminSession
	for node, s := range list {
		if s.Client != "127.0.0.1" || s.Target != sshd.Addr || s.User != sshd.User || s.Started == nil ||
			time.Since(*s.Started) > time.Minute || s.ID == "" || !strings.Contains(node, ":") {
			t.Errorf("got session %+v, want client, target, user, a start time and an id", s)
		}
		if strings.HasSuffix(b.url, node[strings.LastIndex(node, ":"):]) { // node: host:port
			sb = s
		}
	}
	if sb.ID == "" {
		t.Fatalf("got no session of node B (%s) in %+v", b.url, list)
	}

	// Node A ends the session of node B.
	if status, body := admin(t, http.MethodDelete, a.url+"/admin/sessions/"+sb.ID, adminToken); status != http.StatusOK {
		t.Fatalf("DELETE the session of node B on node A: got %d %s, want 200", status, body)
	}
	r := onB.wait(t)
	if r.Closing == nil || !strings.Contains(r.Closing.Output, "\x1b[91mSession ended by an administrator.") {
		t.Errorf("the session of node B: got closing %+v, want the red admin message", r.Closing)
	}
	waitForCond(t, "the ended session to leave the list", 10*time.Second, func() bool { return len(running(adminList(t, a))) == 1 })
	if status, body := admin(t, http.MethodDelete, a.url+"/admin/sessions/"+sb.ID, adminToken); status != http.StatusNotFound {
		t.Errorf("DELETE an ended session: got %d %s, want 404", status, body)
	}
	// And its own.
	for _, s := range running(adminList(t, a)) {
		if status, body := admin(t, http.MethodDelete, b.url+"/admin/sessions/"+s.ID, adminToken); status != http.StatusOK {
			t.Errorf("DELETE the session of node A on node B: got %d %s, want 200", status, body)
		}
	}
	if r := onA.wait(t); r.Closing == nil || !strings.Contains(r.Closing.Output, "Session ended by an administrator.") {
		t.Errorf("the session of node A: got closing %+v, want the admin message", r.Closing)
	}
}

func TestAdminOneNode(t *testing.T) {
	sshd := sshdtest.Start(t)
	g := startGateway(t, "--admin-token", adminToken)
	if status, _ := admin(t, http.MethodGet, g.url+"/admin/sessions", ""); status != http.StatusUnauthorized {
		t.Errorf("GET /admin/sessions without the token: got %d, want 401", status)
	}
	c := startClient(t, ticking(g, g.createCredentials(t, login(sshd)), 1000, 100*time.Millisecond))
	var list map[string]adminSession
	waitForCond(t, "the session in the list", 30*time.Second, func() bool {
		list = running(adminList(t, g))
		return len(list) == 1
	})
	for _, s := range list {
		waitForCond(t, "typing to count", 10*time.Second, func() bool {
			for _, s2 := range adminList(t, g) {
				if s2.ID == s.ID && s2.Bytes.In > 0 && s2.Bytes.Out > 0 {
					return true
				}
			}
			return false
		})
		if status, _ := admin(t, http.MethodDelete, g.url+"/admin/sessions/"+s.ID, adminToken); status != http.StatusOK {
			t.Errorf("DELETE: got %d, want 200", status)
		}
	}
	if r := c.wait(t); r.Closing == nil || !strings.Contains(r.Closing.Output, "Session ended by an administrator.") {
		t.Errorf("got closing %+v, want the admin message", r.Closing)
	}
	if status, _ := admin(t, http.MethodDelete, g.url+"/admin/sessions/nope", adminToken); status != http.StatusNotFound {
		t.Errorf("DELETE an unknown id: got %d, want 404", status)
	}
	// Without --admin-token there are no admin routes.
	plain := startGateway(t)
	if status, _ := getStatus(t, plain.url+"/admin/sessions"); status != http.StatusNotFound {
		t.Errorf("GET /admin/sessions without --admin-token: got %d, want 404", status)
	}
}
