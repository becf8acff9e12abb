package server

import (
	"bufio"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// TestHeadWhereGetWorks: every route that answers GET answers HEAD, with
// the same status and headers and no body.
func TestHeadWhereGetWorks(t *testing.T) {
	s := newTestServer(t, Config{})
	routes := map[string]map[string]bool{}
	for _, r := range s.echo.Routes() {
		if routes[r.Path] == nil {
			routes[r.Path] = map[string]bool{}
		}
		routes[r.Path][r.Method] = true
	}
	for path, methods := range routes {
		if methods[http.MethodGet] && !methods[http.MethodHead] {
			t.Errorf("%s answers GET but not HEAD", path)
		}
	}

	_, m, _ := do(t, s, jsonRequest(`{"hostname":"h","username":"u","password":"p"}`))
	id := m["connection_uuid"].(string)
	for _, path := range []string{"/?connection=" + id, "/" + id, "/healthz", "/static/terminal.js", "/?connection=nope", "/static/missing.js"} {
		get, _, getBody := do(t, s, httptest.NewRequest(http.MethodGet, path, nil))
		head := httptest.NewRecorder()
		s.Handler().ServeHTTP(head, httptest.NewRequest(http.MethodHead, path, nil))
		if head.Code != get.StatusCode || head.Header().Get("Content-Type") != get.Header.Get("Content-Type") {
			t.Errorf("HEAD %s: got %d %q, want %d %q as GET", path, head.Code, head.Header().Get("Content-Type"),
				get.StatusCode, get.Header.Get("Content-Type"))
		}
		if getBody == "" {
			t.Errorf("GET %s: got no body", path)
		}
	}
}

// malformedPaths are request targets a client may send that name nothing:
// invalid escapes and UTF-8, dot segments, NULs, empty segments.
var malformedPaths = []string{
	"/static/%ff", "/static/%c0%af", "/static/%ff%fe.js", "/static/a%00b", "/static/%2e%2e/%2e%2e/etc/passwd",
	"/static/..%2f..%2fetc%2fpasswd", "/static/./terminal.js", "/static//terminal.js", "/static/vendor/",
	"/static/%2fterminal.js", "/static/terminal.js%00", "/static/%5c..%5cx", "/static/" + strings.Repeat("a/", 600),
	"/%ff", "/%c0%af", "/%00", "/a%2fb", "/%2e%2e", "/%2e", "/?connection=%ff", "/?connection=%zz",
	"/create-session/%ff", "/socket.io/%ff", "/socket.io/%2e%2e/", "/healthz/%ff", "//", "///static/terminal.js",
}

// TestMalformedPathsAreClientErrors: no handler answers 500 (or any 5xx)
// to a malformed path; the gateway says 400 or 404. The requests go
// through a real HTTP server, whose parser sees them first.
func TestMalformedPathsAreClientErrors(t *testing.T) {
	s := newTestServer(t, Config{})
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	for _, path := range malformedPaths {
		for _, method := range []string{http.MethodGet, http.MethodHead} {
			status := rawRequest(t, srv.Listener.Addr().String(), method, path)
			if status != http.StatusBadRequest && status != http.StatusNotFound {
				t.Errorf("%s %s: got %d, want 400 or 404", method, path, status)
			}
		}
	}
}

// rawRequest sends the request line as it is (net/http's client would
// re-encode the path) and returns the status.
func rawRequest(t *testing.T, addr, method, target string) int {
	t.Helper()
	c, err := (&net.Dialer{}).DialContext(t.Context(), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(method + " " + target + " HTTP/1.1\r\nHost: " + addr + "\r\nConnection: close\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: method})
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	res.Body.Close()
	return res.StatusCode
}

// FuzzPath: whatever the path, the gateway's handler answers below 500.
// (Go's server rejects what url.ParseRequestURI rejects before any
// handler; so does this target.)
func FuzzPath(f *testing.F) {
	for _, p := range malformedPaths {
		f.Add(p)
	}
	f.Add("/static/terminal.js")
	s := newTestServer(f, Config{})
	f.Fuzz(func(t *testing.T, target string) {
		target, _, _ = strings.Cut(target, "?") // no query: polling requests would open engine sessions
		u, err := url.ParseRequestURI(target)
		if err != nil || strings.HasPrefix(target, "//") || strings.ContainsAny(target, " \r\n\t") {
			return
		}
		for _, method := range []string{http.MethodGet, http.MethodHead} {
			r := &http.Request{Method: method, URL: u, RequestURI: target, Host: "127.0.0.1:5000",
				Header: http.Header{}, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, RemoteAddr: "192.0.2.9:4000"}
			w := httptest.NewRecorder()
			s.Handler().ServeHTTP(w, r)
			if w.Code >= 500 {
				t.Fatalf("%s %q: got %d %s", method, target, w.Code, w.Body)
			}
		}
	})
}
