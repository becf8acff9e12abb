package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/alfresco-ssh/alfresco-ssh/internal/servicetest"
	"github.com/alfresco-ssh/alfresco-ssh/internal/sshdtest"
)

// The nginx configurations of deploy/, as shipped, in front of real
// gateway processes: only the listen address and the upstream servers are
// replaced by the test's.

var (
	listenLine    = regexp.MustCompile(`(?m)^(\s*)listen\s+80;`)
	upstreamBlock = regexp.MustCompile(`(?s)upstream\s+(\w+)\s*\{(.*?)\n\}`)
	serverLine    = regexp.MustCompile(`(?m)^\s*server\s+\S+;\n`)
)

// deployConfig returns deploy/<name> listening on listen, with the servers
// of each upstream replaced by the given addresses (host:port).
func deployConfig(t testing.TB, name, listen string, upstreams map[string][]string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "deploy", name))
	if err != nil {
		t.Fatal(err)
	}
	conf := string(b)
	if !listenLine.MatchString(conf) {
		t.Fatalf("%s has no \"listen 80;\"", name)
	}
	conf = listenLine.ReplaceAllString(conf, "${1}listen "+listen+";")
	replaced := 0
	conf = upstreamBlock.ReplaceAllStringFunc(conf, func(block string) string {
		m := upstreamBlock.FindStringSubmatch(block)
		addrs, ok := upstreams[m[1]]
		if !ok {
			return block
		}
		replaced++
		var servers strings.Builder
		for _, a := range addrs {
			fmt.Fprintf(&servers, "    server %s;\n", a)
		}
		body := serverLine.ReplaceAllString(m[2]+"\n", "")
		return "upstream " + m[1] + " {" + body + servers.String() + "}"
	})
	if replaced != len(upstreams) {
		t.Fatalf("%s: replaced %d upstreams, want %d (%v)", name, replaced, len(upstreams), upstreams)
	}
	return conf
}

// hostPorts are the gateways' addresses without the scheme.
func hostPorts(nodes ...*gateway) []string {
	var out []string
	for _, g := range nodes {
		out = append(out, strings.TrimPrefix(g.url, "http://"))
	}
	return out
}

// startNginx runs deploy/<name> in front of the upstreams.
func startNginx(t *testing.T, name string, upstreams map[string][]string) *servicetest.Nginx {
	t.Helper()
	return servicetest.StartNginx(t, func(listen string) string { return deployConfig(t, name, listen, upstreams) })
}

// shortSession is a session through a proxy: prompt, a computed echo,
// exit.
func shortSession(url, id, tag string) scenario {
	return scenario{URL: url, Start: map[string]any{"credentials_uuid": id}, WaitEnd: true,
		Steps: []step{
			{Expect: prompt, TimeoutMs: 30000},
			{Send: "echo via-" + tag + "-$((6*7))\n"}, {Expect: "via-" + tag + "-42\r\n"},
			{Send: "exit\n"},
		}}
}

// TestNginxWebsocketRoundRobin: nginx-websocket.conf, round-robin over
// three websocket-only nodes on one Redis: sessions created and run
// through nginx all work, and spread over the nodes.
func TestNginxWebsocketRoundRobin(t *testing.T) {
	sshd := sshdtest.Start(t)
	redis := servicetest.StartRedis(t)
	nodes := startNodes(t, 3, redis.URL, "--transports", "websocket", "--trusted-proxies", "127.0.0.1", "--allowed-hosts", "127.0.0.1")
	lb := startNginx(t, "nginx-websocket.conf", map[string][]string{"alfresco_ssh": hostPorts(nodes...)})
	gw := &gateway{url: lb.URL}

	const n = 30
	scs := make([]scenario, n)
	for i := range scs {
		id := gw.createCredentials(t, login(sshd))
		scs[i] = shortSession(lb.URL, id, fmt.Sprint(i))
	}
	results, elapsed := runClients(t, scenario{Transports: []string{"websocket"}, TimeoutMs: 90000}, scs)
	failed := 0
	for i, r := range results {
		if p := r.Problem(); p != "" || !r.Ready || r.Closing == nil {
			failed++
			if failed <= 3 {
				t.Errorf("session %d: %s (ready %v, events %v)", i, p, r.Ready, r.Events)
			}
		}
	}
	if failed > 0 {
		t.Errorf("%d of %d sessions through nginx failed", failed, n)
	}
	for i, g := range nodes {
		if g.started() == 0 {
			t.Errorf("node %d started no session, want round-robin to spread them", i)
		}
	}
	t.Logf("%d sessions through nginx in %v; per node: %d %d %d", n, elapsed, nodes[0].started(), nodes[1].started(), nodes[2].started())

	// Created through nginx: the url names nginx, as the client saw it.
	_, url := gw.createSession(t, login(sshd))
	if !strings.HasPrefix(url, lb.URL+"/") {
		t.Errorf("create-session through nginx: got url %q, want it on %s", url, lb.URL)
	}
	// The stock page learns from the server to use websocket only.
	getBrowser(t)
	p := newPage(t, pageOptions{})
	openTerminal(t, p, lb.URL+"/?connection="+gw.createCredentials(t, login(sshd)))
	checkEcho(t, p)
	var transport string
	p.eval(`() => window.alfresco.socket.io.engine.transport.name`, nil, &transport)
	if transport != "websocket" {
		t.Errorf("the stock page's transport: got %q, want websocket", transport)
	}

	// Polling needs stickiness: these nodes refuse it outright.
	r := runClient(t, scenario{URL: lb.URL, Transports: []string{"polling"}, TimeoutMs: 10000,
		Start: map[string]any{"credentials_uuid": gw.createCredentials(t, login(sshd))}})
	if r.Connected {
		t.Errorf("a polling client on websocket-only nodes: got connected, want refused")
	}
}

// TestNginxSticky: nginx-sticky.conf in front of three nodes that accept
// polling: long-polling clients and a Flask-era page work through it.
func TestNginxSticky(t *testing.T) {
	sshd := sshdtest.Start(t)
	redis := servicetest.StartRedis(t)
	fixture, err := filepath.Abs(filepath.Join("fixtures", "flask-gen2.html"))
	if err != nil {
		t.Fatal(err)
	}
	nodes := startNodes(t, 3, redis.URL, "--trusted-proxies", "127.0.0.1", "--allowed-hosts", "127.0.0.1", "--template", fixture)
	lb := startNginx(t, "nginx-sticky.conf", map[string][]string{"alfresco_ssh_sticky": hostPorts(nodes...)})
	gw := &gateway{url: lb.URL}

	t.Run("polling clients", func(t *testing.T) {
		scs := make([]scenario, 5)
		for i := range scs {
			scs[i] = shortSession(lb.URL, gw.createCredentials(t, login(sshd)), fmt.Sprint(i))
		}
		results, _ := runClients(t, scenario{Transports: []string{"polling"}, Client: "sio-4.0.1", TimeoutMs: 60000}, scs)
		for i, r := range results {
			if p := r.Problem(); p != "" || !r.Ready || r.Transport != "polling" {
				t.Errorf("session %d: %s (ready %v, transport %q)", i, p, r.Ready, r.Transport)
			}
		}
	})

	t.Run("Flask-era page", func(t *testing.T) {
		flaskPageEcho(t, lb.URL+"/?connection="+gw.createCredentials(t, login(sshd)))
	})
}

// flaskPageEcho opens the Flask-era page flask-gen2.html at url (the
// fake CDN serves its scripts) and types an echo in it.
func flaskPageEcho(t *testing.T, url string) {
	t.Helper()
	getBrowser(t)
	p := newPage(t, pageOptions{IgnoreHTTPSErrors: true})
	if status := p.navigate(url); status != http.StatusOK {
		t.Fatalf("GET %s: got %d, want 200", url, status)
	}
	p.waitFor("the Flask page's socket", `() => window.term && window.socket && window.socket.connected`, nil)
	p.waitPrompt()
	checkEcho(t, p)
}

// TestNginxSubPath: nginx-subpath.conf serves the gateway at /lab/terminal/
// next to another application that owns the rest of the site; the stock
// page and a Flask-era page both work there.
func TestNginxSubPath(t *testing.T) {
	sshd := sshdtest.Start(t)
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "the lab application: %s", r.URL.Path)
	}))
	t.Cleanup(other.Close)
	fixture, err := filepath.Abs(filepath.Join("fixtures", "flask-gen2.html"))
	if err != nil {
		t.Fatal(err)
	}
	// behind starts a gateway at the sub-path behind nginx and returns the
	// gateway's URL as the browser sees it.
	behind := func(t *testing.T, flags ...string) (*servicetest.Nginx, *gateway) {
		g := startGateway(t, append([]string{"--base-path", "/lab/terminal", "--trusted-proxies", "127.0.0.1", "--allowed-hosts", "127.0.0.1"}, flags...)...)
		lb := startNginx(t, "nginx-subpath.conf", map[string][]string{
			"alfresco_ssh_lab": hostPorts(g),
			"lab_app":          {strings.TrimPrefix(other.URL, "http://")},
		})
		return lb, &gateway{url: lb.URL + "/lab/terminal"}
	}

	t.Run("stock page", func(t *testing.T) {
		lb, gw := behind(t)
		for path, want := range map[string]string{
			"/":                     "the lab application: /",
			"/courses/1":            "the lab application: /courses/1",
			"/lab/terminal/livez":   "ok\n",
			"/lab/terminal/readyz":  "ready\n",
			"/lab/terminal/healthz": "ok\n",
		} {
			if status, body := getStatus(t, lb.URL+path); status != http.StatusOK || body != want {
				t.Errorf("GET %s: got %d %q, want 200 %q", path, status, body, want)
			}
		}
		status, m := post(t, gw.url+"/create-credentials", login(sshd))
		id, _ := m["connection_uuid"].(string)
		if want := gw.url + "/?connection=" + id; status != http.StatusOK || m["url"] != want {
			t.Fatalf("create: got %d url %v, want %s", status, m["url"], want)
		}
		gen1, url1 := gw.createSession(t, login(sshd))
		if url1 != gw.url+"/"+gen1 {
			t.Errorf("create-session: got url %q, want %s/<id>", url1, gw.url)
		}
		for _, tr := range [][]string{{"websocket"}, {"polling"}} {
			sc := shortSession(lb.URL, gw.createCredentials(t, login(sshd)), "sub")
			sc.Path, sc.Transports = "/lab/terminal/socket.io/", tr
			if r := runClient(t, sc); r.Problem() != "" || !r.Ready {
				t.Errorf("socket.io-client on /lab/terminal/socket.io/, transports %v: %s", tr, r.Problem())
			}
		}
		getBrowser(t)
		p := newPage(t, pageOptions{})
		openTerminal(t, p, m["url"].(string))
		checkEcho(t, p)
		p2 := newPage(t, pageOptions{})
		openTerminal(t, p2, url1)
		checkEcho(t, p2)
	})

	t.Run("Flask-era page", func(t *testing.T) {
		// The page connects to /socket.io/ at the site root, which nginx
		// maps to the gateway.
		_, gw := behind(t, "--template", fixture)
		flaskPageEcho(t, gw.url+"/?connection="+gw.createCredentials(t, login(sshd)))
	})
}
