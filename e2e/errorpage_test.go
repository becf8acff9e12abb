package e2e

import (
	"net/http"
	"strings"
	"testing"

	"github.com/alfresco-ssh/alfresco-ssh/internal/sshdtest"
)

// What a person sees in Chromium where the API answers an error: a page
// styled like the terminal, without scripts, that says what happened and
// what to do next; and the gateway refusing a name that was made to
// resolve to it (DNS rebinding).

// errorPageJS describes the page a test is on.
const errorPageJS = `() => ({
	type: document.contentType,
	text: document.body.innerText,
	scripts: document.scripts.length,
	links: [...document.links].map(a => a.href),
	background: getComputedStyle(document.documentElement).backgroundColor,
	font: getComputedStyle(document.body).fontFamily,
})`

type errorPageView struct {
	Type, Text, Background, Font string
	Scripts                      int
	Links                        []string
}

func viewErrorPage(t *testing.T, p *page, url string, wantStatus int) errorPageView {
	t.Helper()
	if status := p.navigate(url); status != wantStatus {
		t.Fatalf("GET %s: got status %d, want %d", url, status, wantStatus)
	}
	var v errorPageView
	p.eval(errorPageJS, nil, &v)
	if v.Type != "text/html" || v.Scripts != 0 || v.Background != "rgb(0, 0, 0)" || !strings.Contains(v.Font, "monospace") {
		t.Errorf("GET %s: got %+v, want an HTML page without scripts, white on black in a monospace font", url, v)
	}
	return v
}

func TestBrowserErrorPages(t *testing.T) {
	getBrowser(t)
	sshd := sshdtest.Start(t)
	g := startGateway(t, "--docs-url", "https://docs.example.com/alfresco-ssh")
	p := newPage(t, pageOptions{})

	t.Run("unknown link", func(t *testing.T) {
		for _, url := range []string{g.url + "/?connection=0c2a6f0e-6f77-4b0c-9d0b-1f3c2a9f8e11", g.url + "/0c2a6f0e-6f77-4b0c-9d0b-1f3c2a9f8e11"} {
			v := viewErrorPage(t, p, url, http.StatusNotFound)
			for _, want := range []string{"404 Not Found", "This terminal link is unknown, already used or expired",
				"expires after 2 minutes", "Ask the application that opened this terminal for a new link."} {
				if !strings.Contains(v.Text, want) {
					t.Errorf("GET %s: page lacks %q:\n%s", url, want, v.Text)
				}
			}
		}
	})

	t.Run("reload after the session ended", func(t *testing.T) {
		url := g.url + "/?connection=" + g.createCredentials(t, login(sshd))
		openTerminal(t, p, url)
		p.run("exit")
		p.waitFor("the session to end", `() => window.alfresco.state === "ended"`, nil)
		v := viewErrorPage(t, p, url, http.StatusNotFound)
		if !strings.Contains(v.Text, "Ask the application that opened this terminal for a new link.") {
			t.Errorf("page lacks what to do next:\n%s", v.Text)
		}
	})

	t.Run("bare address", func(t *testing.T) {
		v := viewErrorPage(t, p, g.url+"/", http.StatusNotFound)
		if !strings.Contains(v.Text, "alfresco-ssh: a web SSH gateway") || len(v.Links) != 1 || v.Links[0] != "https://docs.example.com/alfresco-ssh" {
			t.Errorf("got %q with links %q, want what this server is and a link to its documentation", v.Text, v.Links)
		}
	})
}

// TestBrowserRebindingRefused: Chromium resolves every *.localhost name to
// loopback, as a rebinding attacker's name would resolve; the gateway on
// loopback answers only to its own names.
func TestBrowserRebindingRefused(t *testing.T) {
	getBrowser(t)
	g := startGateway(t)
	port := g.url[strings.LastIndex(g.url, ":")+1:]
	p := newPage(t, pageOptions{})

	v := viewErrorPage(t, p, "http://rebound.localhost:"+port+"/?connection=x", http.StatusMisdirectedRequest)
	if !strings.Contains(v.Text, "421 Misdirected Request") || !strings.Contains(v.Text, "Unknown host name") {
		t.Errorf("got %q, want the 421 page", v.Text)
	}
	// Nor any other resource, under that name; under the gateway's own
	// names they load.
	if status := p.navigate("http://rebound.localhost:" + port + "/static/terminal.js"); status != http.StatusMisdirectedRequest {
		t.Errorf("a file under the rebound name: got %d, want 421", status)
	}
	for _, host := range []string{"127.0.0.1", "localhost"} {
		if status := p.navigate("http://" + host + ":" + port + "/static/terminal.js"); status != http.StatusOK {
			t.Errorf("a file under %s: got %d, want 200", host, status)
		}
	}
	if n := g.count(`"refused request for a host name not in --allowed-hosts"`); n < 2 {
		t.Errorf("got %d log lines about the refused host, want one per request", n)
	}
}
