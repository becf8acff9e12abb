package e2e

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/alfresco-ssh/alfresco-ssh/internal/servicetest"
	"github.com/alfresco-ssh/alfresco-ssh/internal/sshdtest"
)

// TestNginxResumeRoutedByNode: deploy/nginx-websocket.conf, as shipped,
// in front of three websocket-only nodes on one Redis, named as its map
// names them (--node-name node1..node3). A resumable session's
// connection-ready names the node that holds it; the client
// (resumeclient.mjs) goes through a proxy that cuts the connection for a
// few seconds, then resumes through nginx:
//   - with ?node=<that name>, nginx sends the resume to that node, which
//     takes it back: every numbered line once, in order;
//   - with ?node=<another node's name>, it lands there and is refused
//     like an unknown token ("The session has ended."), as it would be
//     without the parameter on any node but the one holding the session.
//
// A session that does not opt in to resume gets no "node".
func TestNginxResumeRoutedByNode(t *testing.T) {
	dir := e2eDir(t)
	sshd := sshdtest.Start(t)
	names, nodes, lb := startRoutedNodes(t)
	gw := &gateway{url: lb.URL}

	// Without the opt-in, connection-ready is as it always was.
	plain := shortSession(lb.URL, gw.createCredentials(t, login(sshd)), randomTag())
	plain.Transports = []string{"websocket"}
	r := runClient(t, plain)
	if p := r.Problem(); p != "" || !r.Ready || slices.Contains(r.ReadyKeys, "node") || slices.Contains(r.ReadyKeys, "resume_token") {
		t.Errorf("session without resume: %s; connection-ready keys %v, want neither node nor resume_token", p, r.ReadyKeys)
	}

	for _, tc := range []struct {
		route  string
		resume bool
	}{{"same", true}, {"other", false}} {
		t.Run(tc.route, func(t *testing.T) {
			proxy := startTCPProxy(t, strings.TrimPrefix(lb.URL, "http://"))
			tag := randomTag()
			const lines = 300
			input := numberedInput(proxy.url(), gw.createCredentials(t, login(sshd)), tag, lines, []string{"websocket"}, []string{"websocket"})
			input["route"], input["nodes"] = tc.route, names
			in, _ := json.Marshal(input)
			before := make([]int, len(nodes))
			for i, g := range nodes {
				before[i] = resumesReached(g)
			}
			end, _ := driveResume(t, dir, in, proxy)
			if end.Node == nil {
				t.Fatalf("connection-ready of a resumable session carried no node (client error %q)", end.Error)
			}
			holder := -1
			for i, name := range names {
				if *end.Node == name {
					holder = i
				}
			}
			if holder < 0 {
				t.Fatalf("connection-ready named node %q, want one of %v", *end.Node, names)
			}
			// The node each resume reached, from the nodes' logs.
			reached := map[string]int{}
			for i, g := range nodes {
				if resumesReached(g) > before[i] {
					reached[names[i]]++
				}
			}
			if tc.resume {
				if end.Error != "" || end.Resumes == 0 || end.Duplicates != 0 {
					t.Fatalf("client ended with error %q after %d resumes and %d duplicates; want no error, a resume, no duplicate", end.Error, end.Resumes, end.Duplicates)
				}
				checkNumbered(t, end.Output, tag, lines)
				if len(reached) != 1 || reached[names[holder]] == 0 {
					t.Errorf("resumes reached %v, want %s alone", reached, names[holder])
				}
				return
			}
			if end.Resumes != 0 || !strings.Contains(end.Error, "The session has ended.") {
				t.Fatalf("resume sent to another node: client ended with error %q after %d resumes; want it refused, \"The session has ended.\"", end.Error, end.Resumes)
			}
			other := ""
			for _, n := range names {
				if n != names[holder] && other == "" {
					other = n
				}
			}
			if len(reached) != 1 || reached[other] == 0 {
				t.Errorf("resume reached %v, want %s alone", reached, other)
			}
		})
	}
}

// startRoutedNodes starts three websocket-only nodes on one Redis, named
// node1 to node3 as the map of deploy/nginx-websocket.conf names them,
// and that configuration in front of them.
func startRoutedNodes(t *testing.T) ([]string, []*gateway, *servicetest.Nginx) {
	t.Helper()
	redis := servicetest.StartRedis(t)
	names := []string{"node1", "node2", "node3"}
	nodes := make([]*gateway, len(names))
	upstreams := map[string][]string{}
	for i, name := range names {
		nodes[i] = startGatewayEnv(t, []string{nodeKey}, "--store", redis.URL, "--node-name", name,
			"--transports", "websocket", "--trusted-proxies", "127.0.0.1", "--allowed-hosts", "*")
		upstreams["alfresco_ssh_"+name] = hostPorts(nodes[i])
	}
	upstreams["alfresco_ssh"] = hostPorts(nodes...)
	return names, nodes, startNginx(t, "nginx-websocket.conf", upstreams)
}

// TestBrowserResumeRoutedByNode: the stock page through
// deploy/nginx-websocket.conf in front of three nodes (through a proxy
// that can cut the connection) takes its session back after a reload
// (the page's address carries ?node=, and sessionStorage the name) and
// after a drop (every reconnection carries ?node=), each time on the
// node that holds it.
func TestBrowserResumeRoutedByNode(t *testing.T) {
	getBrowser(t)
	sshd := sshdtest.Start(t)
	_, _, lb := startRoutedNodes(t)
	proxy := startTCPProxy(t, strings.TrimPrefix(lb.URL, "http://"))
	gw := &gateway{url: lb.URL}
	p := newPage(t, pageOptions{})
	openTerminal(t, p, proxy.url()+"/?connection="+gw.createCredentials(t, login(sshd)))
	var node string
	p.eval(`() => new URL(location.href).searchParams.get("node")`, nil, &node)
	if !strings.HasPrefix(node, "node") {
		t.Fatalf("page address after connection-ready: node=%q, want the node's name", node)
	}
	tag := randomTag()
	p.run("echo kept-" + tag + "-$((3*3))")
	p.waitLine("kept-" + tag + "-9")

	for i := 0; i < 3; i++ { // round-robin alone would land elsewhere
		var here string
		p.eval(`() => location.href`, nil, &here)
		p.navigate(here)
		p.waitFor("the session to resume after a reload", readyJS, nil)
		p.waitLine("kept-" + tag + "-9") // the same session: its screen is back
		checkEcho(t, p)
	}
	for i := 0; i < 3; i++ {
		proxy.cut()
		p.waitFor("the page to notice the drop", `() => window.alfresco.state === "reconnecting"`, nil)
		proxy.restore()
		p.waitFor("the session to resume after a drop", readyJS, nil)
		checkEcho(t, p)
	}
}

// resumesReached counts the resumes that reached g, taken or refused.
func resumesReached(g *gateway) int {
	return g.count(`"terminal resumed"`) + strings.Count(g.logs.String(), `err="resume token unknown, used or expired"`)
}
