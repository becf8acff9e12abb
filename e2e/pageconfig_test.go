package e2e

import (
	"html"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/alfresco-ssh/alfresco-ssh/internal/sshdtest"
)

// TestBrowserPageConfig: the stock page follows the settings the server
// renders into its data-config attribute (INTERFACES.md section 1).
func TestBrowserPageConfig(t *testing.T) {
	getBrowser(t)
	sshd := sshdtest.Start(t)

	t.Run("embed origins", func(t *testing.T) {
		g := startGateway(t, "--embed-origins", "https://lab.example.com, http://localhost:8080")
		p := newPage(t, pageOptions{})
		openTerminal(t, p, g.url+"/?connection="+g.createCredentials(t, login(sshd)))
		var got []string
		p.eval(`() => window.alfresco.config.embedOrigins`, nil, &got)
		if want := []string{"https://lab.example.com", "http://localhost:8080"}; !reflect.DeepEqual(got, want) {
			t.Errorf("got embedOrigins %q, want %q", got, want)
		}
	})

	// A base path and websocket only, through a proxy that serves the
	// gateway under /prefix/ and nothing else: the page's every request
	// (assets, Socket.IO) must go under the prefix, over no polling.
	t.Run("base path and transports", func(t *testing.T) {
		const prefix = "/prefix"
		src, err := os.ReadFile(filepath.Join("..", "templates", "index.html"))
		if err != nil {
			t.Fatal(err)
		}
		tmpl := strings.ReplaceAll(string(src), "{{ page_config }}",
			html.EscapeString(`{"basePath": "`+prefix+`/", "transports": ["websocket"], "future": 1}`))
		tmpl = strings.ReplaceAll(tmpl, "{{ url_for('static', filename='", prefix+"/static/")
		tmpl = strings.ReplaceAll(tmpl, "') }}", "")
		path := filepath.Join(t.TempDir(), "index.html")
		if err := os.WriteFile(path, []byte(tmpl), 0o644); err != nil {
			t.Fatal(err)
		}
		g := startGateway(t, "--template", path)
		proxy := prefixProxy(t, g.url, prefix)
		p := newPage(t, pageOptions{})
		openTerminal(t, p, proxy.url+prefix+"/?connection="+g.createCredentials(t, login(sshd)))
		checkEcho(t, p)
		var transport string
		p.eval(`() => window.alfresco.socket.io.engine.transport.name`, nil, &transport)
		if transport != "websocket" {
			t.Errorf("got transport %q, want websocket", transport)
		}
		if stray := proxy.requests(func(u *url.URL) bool { return !strings.HasPrefix(u.Path, prefix+"/") }); len(stray) > 0 {
			t.Errorf("got requests outside %s/: %q", prefix, stray)
		}
		if polls := proxy.requests(func(u *url.URL) bool { return u.Query().Get("transport") == "polling" }); len(polls) > 0 {
			t.Errorf("got polling requests with transports [websocket]: %q", polls)
		}
		if ws := proxy.requests(func(u *url.URL) bool { return u.Path == prefix+"/socket.io/" }); len(ws) == 0 {
			t.Errorf("got no request to %s/socket.io/", prefix)
		}
	})
}

// proxy serves a gateway under a path prefix, as a reverse proxy of an
// operator would, and records every request it gets.
type proxy struct {
	url string

	mu   sync.Mutex
	seen []*url.URL
}

func prefixProxy(t testing.TB, gatewayURL, prefix string) *proxy {
	t.Helper()
	target, err := url.Parse(gatewayURL)
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{}
	transport := &http.Transport{DisableKeepAlives: true}
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.Out.URL.Scheme, r.Out.URL.Host = target.Scheme, target.Host
			r.Out.URL.Path, r.Out.URL.RawPath = strings.TrimPrefix(r.In.URL.Path, prefix), ""
			r.Out.Host = target.Host
			if r.In.Header.Get("Origin") != "" { // the gateway sees its own origin
				r.Out.Header.Set("Origin", gatewayURL)
			}
		},
		Transport: transport,
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.seen = append(p.seen, r.URL)
		p.mu.Unlock()
		if !strings.HasPrefix(r.URL.Path, prefix+"/") {
			http.NotFound(w, r)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		srv.Close()
		transport.CloseIdleConnections()
	})
	p.url = srv.URL
	return p
}

// requests returns the URLs of the requests so far that match.
func (p *proxy) requests(match func(*url.URL) bool) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, u := range p.seen {
		if match(u) {
			out = append(out, u.String())
		}
	}
	return out
}
