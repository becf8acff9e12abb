package server

import (
	"bytes"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
)

// browserAccept is what Chromium sends when it navigates.
const browserAccept = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7"

func TestWantsHTML(t *testing.T) {
	tests := []struct {
		accept string
		want   bool
	}{
		{browserAccept, true},
		{"text/html", true},
		{"application/xhtml+xml", true},
		{"", false},
		{"*/*", false},
		{"application/json", false},
		{"application/json, text/html", false}, // a tie goes to the API
		{"text/html;q=0.5, application/json", false},
		{"text/html, application/json;q=0.9", true},
		{"text/html;q=0", false},
		{"text/*", false},
		{"text/html;q=bad", false},
		{"garbage;;;", false},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("Accept", tt.accept)
		if got := wantsHTML(r); got != tt.want {
			t.Errorf("Accept %q: got %v, want %v", tt.accept, got, tt.want)
		}
	}
}

// TestErrorBodiesForAPIClients: whatever a browser gets, an API client's
// error bodies stay the protocol's, byte for byte.
func TestErrorBodiesForAPIClients(t *testing.T) {
	s := newTestServer(t, Config{})
	const id = "0c2a6f0e-6f77-4b0c-9d0b-1f3c2a9f8e11"
	tests := []struct {
		path, want string
	}{
		{"/?connection=nope", `{"success":false,"error":"Could not find stored credentials with ID nope"}` + "\n"},
		{"/", `{"success":false,"error":"Could not find stored credentials with ID "}` + "\n"},
		{"/" + id, `{"error":"Could not find stored credentials with ID ` + id + `"}` + "\n"},
		{"/static/missing.js", `{"success":false,"error":"Not Found"}` + "\n"},
	}
	for _, tt := range tests {
		for _, accept := range []string{"", "*/*", "application/json", "application/json, text/html", "text/plain"} {
			r := httptest.NewRequest(http.MethodGet, tt.path, nil)
			if accept != "" {
				r.Header.Set("Accept", accept)
			}
			res, _, body := do(t, s, r)
			if res.StatusCode != 404 || body != tt.want || res.Header.Get("Content-Type") != "application/json" {
				t.Errorf("GET %s, Accept %q: got %d %s %q, want 404 application/json %q",
					tt.path, accept, res.StatusCode, res.Header.Get("Content-Type"), body, tt.want)
			}
		}
	}
}

func TestErrorPagesForBrowsers(t *testing.T) {
	s := newTestServer(t, Config{FrameAncestors: []string{"https://lab.example.com"}})
	_, m, _ := do(t, s, jsonRequest(`{"hostname":"h","username":"u","password":"p"}`))
	used := m["connection_uuid"].(string)
	s.store.Take(t.Context(), used)
	tests := []struct {
		name, path string
		want       []string
	}{
		{"unknown gen2", "/?connection=nope", []string{"<title>404 Not Found · alfresco-ssh</title>", "<h1>404 Not Found</h1>",
			"This terminal link is unknown, already used or expired: a link opens one terminal, and expires after 2 minutes if it is not used.",
			"Ask the application that opened this terminal for a new link."}},
		{"used gen1", "/" + used, []string{"<h1>404 Not Found</h1>", "Ask the application that opened this terminal for a new link."}},
		{"missing file", "/static/missing.js", []string{"<h1>404 Not Found</h1>", "<p>Not Found</p>"}},
		{"bare address", "/", []string{"<title>alfresco-ssh</title>", "<h1>alfresco-ssh: a web SSH gateway</h1>",
			"This address shows a terminal when it is opened with a link that an application created for it (/?connection=&lt;id&gt;)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, tt.path, nil)
			r.Header.Set("Accept", browserAccept)
			res, _, body := do(t, s, r)
			if res.StatusCode != 404 || res.Header.Get("Content-Type") != "text/html; charset=utf-8" {
				t.Errorf("got %d %s, want 404 text/html", res.StatusCode, res.Header.Get("Content-Type"))
			}
			for _, w := range tt.want {
				if !strings.Contains(body, w) {
					t.Errorf("page lacks %q:\n%s", w, body)
				}
			}
			if strings.Contains(strings.ToLower(body), "<script") || strings.Contains(body, "<a ") {
				t.Errorf("page has a script or a link:\n%s", body)
			}
			csp := res.Header.Get("Content-Security-Policy")
			if !strings.HasPrefix(csp, "default-src 'none'; style-src 'sha256-") || !strings.HasSuffix(csp, "; frame-ancestors https://lab.example.com") {
				t.Errorf("got CSP %q, want no scripts, the page's style and the operator's frame-ancestors", csp)
			}
			if v := res.Header.Values("Vary"); len(v) != 1 || v[0] != "Accept" {
				t.Errorf("got Vary %q, want Accept", v)
			}
		})
	}
	t.Run("bare address links the documentation", func(t *testing.T) {
		s := newTestServer(t, Config{DocsURL: "https://example.com/alfresco-ssh#readme"})
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("Accept", browserAccept)
		if _, _, body := do(t, s, r); !strings.Contains(body, `<a href="https://example.com/alfresco-ssh#readme">`) {
			t.Errorf("page lacks the documentation link:\n%s", body)
		}
	})
}

// TestHTTP500 makes a handler fail and one panic: the client gets the
// protocol's 500 body (or the HTML page), the log one line with the cause.
func TestHTTP500(t *testing.T) {
	var logs bytes.Buffer // handlers run on this goroutine here
	s := newTestServer(t, Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	s.echo.GET("/fail", func(echo.Context) error { return errors.New("disk on fire") })
	s.echo.GET("/panic", func(echo.Context) error { panic("nil map") })
	for _, path := range []string{"/fail", "/panic"} {
		t.Run(path, func(t *testing.T) {
			logs.Reset()
			res, _, body := do(t, s, httptest.NewRequest(http.MethodGet, path, nil))
			if want := `{"success":false,"error":"Internal server error"}` + "\n"; res.StatusCode != 500 || body != want {
				t.Errorf("got %d %q, want 500 %q", res.StatusCode, body, want)
			}
			if n := strings.Count(logs.String(), "level="); n != 1 || !strings.Contains(logs.String(), `msg="request failed"`) {
				t.Errorf("got log %q, want one line saying the request failed", logs.String())
			}
			cause := map[string]string{"/fail": "disk on fire", "/panic": "panic: nil map"}[path]
			if !strings.Contains(logs.String(), cause) {
				t.Errorf("got log %q, want the cause %q", logs.String(), cause)
			}
			if path == "/panic" && !strings.Contains(logs.String(), "stack=") {
				t.Errorf("got log %q, want the panic's stack", logs.String())
			}
			r := httptest.NewRequest(http.MethodGet, path, nil)
			r.Header.Set("Accept", browserAccept)
			res, _, body = do(t, s, r)
			if res.StatusCode != 500 || !strings.Contains(body, "<h1>500 Internal Server Error</h1>") || strings.Contains(body, cause) {
				t.Errorf("browser: got %d %q, want the 500 page without the internal cause", res.StatusCode, body)
			}
		})
	}
}

func TestHumanDuration(t *testing.T) {
	for d, want := range map[string]string{"2m": "2 minutes", "1m": "1 minute", "90s": "90 seconds", "1h": "1 hour", "1h30m": "90 minutes", "1.4s": "1 second"} {
		dur, err := time.ParseDuration(d)
		if err != nil {
			t.Fatal(err)
		}
		if got := humanDuration(dur); got != want {
			t.Errorf("%s: got %q, want %q", d, got, want)
		}
	}
}
