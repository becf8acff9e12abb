package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alfresco-ssh/alfresco-ssh/internal/servicetest"
	"github.com/alfresco-ssh/alfresco-ssh/internal/sioclient"
	"github.com/alfresco-ssh/alfresco-ssh/internal/sshdtest"
)

// Several gateway processes sharing one redis-server, as the nodes of a
// deployment do (README, "Running several nodes").

// nodeKey is the CREDENTIALS_KEY every node of a test deployment shares.
const nodeKey = "CREDENTIALS_KEY=cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4="

// startNodes starts n gateways on one Redis store.
func startNodes(t *testing.T, n int, redisURL string, flags ...string) []*gateway {
	t.Helper()
	nodes := make([]*gateway, n)
	for i := range nodes {
		nodes[i] = startGatewayEnv(t, []string{nodeKey}, append([]string{"--store", redisURL}, flags...)...)
	}
	return nodes
}

// getStatus is GET url's status and body.
func getStatus(t testing.TB, url string) (int, string) {
	t.Helper()
	res, err := httpClient.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// started is how many terminal sessions a gateway has started.
func (g *gateway) started() int { return g.count(`"terminal session started"`) }

func TestNodesShareRedis(t *testing.T) {
	sshd := sshdtest.Start(t)
	redis := servicetest.StartRedis(t)
	nodes := startNodes(t, 3, redis.URL)
	a, b, c := nodes[0], nodes[1], nodes[2]

	t.Run("create on one node, start on another", func(t *testing.T) {
		id := a.createCredentials(t, login(sshd))
		if status, _ := getStatus(t, c.url+"/?connection="+id); status != http.StatusOK {
			t.Errorf("page on another node: got %d, want 200", status)
		}
		r := runClient(t, fullSession(b, id, "ab"))
		checkFullSession(t, r, "websocket")

		gen1, _ := c.createSession(t, login(sshd))
		sc := fullSession(a, "", "ca")
		sc.Start = map[string]any{"create_session_id": gen1}
		checkFullSession(t, runClient(t, sc), "websocket")
	})

	t.Run("50 sockets over the nodes race for one id", func(t *testing.T) {
		id := a.createCredentials(t, login(sshd))
		scs := make([]scenario, 50)
		for i := range scs {
			scs[i] = scenario{URL: nodes[i%3].url, Transports: []string{"websocket"},
				Start: map[string]any{"credentials_uuid": id}, WaitEnd: true,
				Steps: []step{{Expect: prompt, TimeoutMs: 20000}, {Send: "exit\n"}}}
		}
		results, _ := runClients(t, scenario{TimeoutMs: 60000}, scs)
		won := 0
		for i, r := range results {
			if r.Ready {
				won++
				if p := r.Problem(); p != "" {
					t.Errorf("winner %d: %s", i, p)
				}
				continue
			}
			if r.Closing == nil || !strings.Contains(r.Closing.Output, "unknown, expired or already used") {
				t.Errorf("loser %d: got closing %+v (events %v), want the credentials refused", i, r.Closing, r.Events)
			}
		}
		if won != 1 {
			t.Errorf("got %d sessions started, want exactly 1", won)
		}
	})

	t.Run("expiry set by the creating node holds on the others", func(t *testing.T) {
		short := startGatewayEnv(t, []string{nodeKey}, "--store", redis.URL, "--credentials-ttl", "1s")
		id := short.createCredentials(t, login(sshd))
		waitForCond(t, "the credentials to expire", 10*time.Second, func() bool {
			status, _ := getStatus(t, a.url+"/?connection="+id)
			return status == http.StatusNotFound
		})
		r := runClient(t, scenario{URL: b.url, Transports: []string{"websocket"}, Start: map[string]any{"credentials_uuid": id}, WaitEnd: true, WaitReady: sioclient.Bool(false)})
		if r.Ready || r.Closing == nil || !strings.Contains(r.Closing.Output, "unknown, expired or already used") {
			t.Errorf("start after expiry: got ready %v, closing %+v; want the credentials refused", r.Ready, r.Closing)
		}
	})

	t.Run("a dump of Redis holds no secret", func(t *testing.T) {
		var ids []string
		for _, g := range nodes {
			ids = append(ids, g.createCredentials(t, login(sshd)))
		}
		rdb := filepath.Join(t.TempDir(), "dump.rdb")
		if _, err := redis.CLI("--rdb", rdb); err != nil {
			t.Fatal(err)
		}
		dump, err := os.ReadFile(rdb)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range ids {
			if !bytes.Contains(dump, []byte(id)) {
				t.Fatalf("the dump lacks the key of %s; is it this Redis's?", id)
			}
		}
		for _, secret := range []string{sshd.Password, sshd.User} {
			if bytes.Contains(dump, []byte(secret)) {
				t.Errorf("the Redis dump holds %q, want only ciphertext", secret)
			}
		}
	})

	t.Run("the create rate counts across nodes", func(t *testing.T) {
		own := servicetest.StartRedis(t) // a budget of its own
		limited := startNodes(t, 2, own.URL, "--create-rate", "4")
		for i := range 4 {
			if status, body := createRaw(limited[i%2].url, login(sshd)); status != http.StatusOK {
				t.Fatalf("creation %d: got %d %s, want 200", i, status, body)
			}
		}
		for _, g := range limited {
			if status, body := createRaw(g.url, login(sshd)); status != http.StatusTooManyRequests {
				t.Errorf("5th creation in a minute: got %d %s, want 429", status, body)
			}
		}
	})

	t.Run("Redis stopped and restarted under load", func(t *testing.T) {
		redisOutage(t, sshd, redis, nodes)
	})
}

// redisOutage stops Redis while clients keep creating credentials and a
// terminal types: creation answers a clear 503 and readiness turns 503 on
// every node, the live terminal goes on, and once Redis is back all of it
// recovers by itself.
func redisOutage(t *testing.T, sshd *sshdtest.Server, redis *servicetest.Redis, nodes []*gateway) {
	id := nodes[0].createCredentials(t, login(sshd))
	before := nodes[1].started()
	live := startClient(t, scenario{URL: nodes[1].url, Transports: []string{"websocket"},
		Start: map[string]any{"credentials_uuid": id}, WaitEnd: true,
		Steps: []step{
			{Expect: prompt, TimeoutMs: 20000},
			{WaitMs: 2500}, // Redis goes down meanwhile
			{Send: "echo during-$((40+2))\n"}, {Expect: "during-42\r\n"},
			{Send: "exit\n"},
		}})
	waitForCond(t, "the live session to start", 20*time.Second, func() bool { return nodes[1].started() > before })

	// Load: creations on every node, all the while, each answered 200 or
	// the 503 of an unreachable store, nothing else.
	stop := make(chan struct{})
	var mu sync.Mutex
	counts := map[string]int{}
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Go(func() {
			for n := 0; n < 2000; n++ {
				select {
				case <-stop:
					return
				default:
				}
				status, body := createRaw(nodes[(w+n)%len(nodes)].url, login(sshd))
				key := fmt.Sprint(status)
				// The shared create rate or the store, whichever asks
				// Redis first, says it is unreachable.
				if status == http.StatusServiceUnavailable && body != `{"success":false,"error":"Credential store unavailable, try again later"}` &&
					body != `{"success":false,"error":"Service unavailable, try again later"}` {
					key = "503 " + body
				}
				mu.Lock()
				counts[key]++
				mu.Unlock()
				time.Sleep(10 * time.Millisecond) // a steady rate, not a flood
			}
		})
	}
	seen := func(key string) int {
		mu.Lock()
		defer mu.Unlock()
		return counts[key]
	}
	waitForCond(t, "creations to succeed before the outage", 10*time.Second, func() bool { return seen("200") > 10 })
	redis.Stop()
	waitForCond(t, "creations to answer 503", 10*time.Second, func() bool { return seen("503") > 10 })
	for _, g := range nodes {
		if status, body := getStatus(t, g.url+"/readyz"); status != http.StatusServiceUnavailable {
			t.Errorf("%s/readyz while Redis is down: got %d %q, want 503", g.url, status, body)
		}
		if status, _ := getStatus(t, g.url+"/livez"); status != http.StatusOK {
			t.Errorf("%s/livez while Redis is down: got %d, want 200", g.url, status)
		}
	}
	if r := live.wait(t); r.Problem() != "" || !r.Ready {
		t.Errorf("the live terminal during the outage: %s", r.Problem())
	}
	okBefore := seen("200")
	redis.Restart()
	waitForCond(t, "creations to succeed again", 20*time.Second, func() bool { return seen("200") > okBefore+10 })
	close(stop)
	wg.Wait()
	for _, g := range nodes {
		if status, _ := getStatus(t, g.url+"/readyz"); status != http.StatusOK {
			t.Errorf("%s/readyz after the restart: got %d, want 200", g.url, status)
		}
	}
	for key, n := range counts {
		if key != "200" && key != "503" {
			t.Errorf("got %d replies %s, want only 200 and the 503 of an unreachable store", n, key)
		}
	}
	t.Logf("creations during the test: %v", counts)
	id = nodes[2].createCredentials(t, login(sshd))
	checkFullSession(t, runClient(t, fullSession(nodes[0], id, "after")), "websocket")
}

// createRaw posts a JSON create request and returns the status and the
// body; a transport error is status 0.
func createRaw(base string, body map[string]any) (int, string) {
	b, _ := json.Marshal(body)
	res, err := httpClient.Post(base+"/create-credentials", "application/json", bytes.NewReader(b))
	if err != nil {
		return 0, err.Error()
	}
	defer res.Body.Close()
	reply, _ := io.ReadAll(res.Body)
	return res.StatusCode, strings.TrimSpace(string(reply))
}

// pendingClient is a scenario running in the background.
type pendingClient chan func() (*result, error)

// startClient runs a scenario in the background.
func startClient(t testing.TB, sc scenario) pendingClient {
	dir := e2eDir(t)
	p := make(pendingClient, 1)
	go func() {
		r, err := sioclient.Run(dir, sc)
		p <- func() (*result, error) { return r, err }
	}()
	return p
}

// wait returns the scenario's result.
func (p pendingClient) wait(t testing.TB) *result {
	t.Helper()
	r, err := (<-p)()
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// waitForCond polls cond until it holds, failing the test after timeout.
func waitForCond(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
