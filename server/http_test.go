package server

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/uuid"
)

var testAssets = fstest.MapFS{
	"templates/index.html": {Data: []byte(`<body data-id="{{ credentials_uuid }}">`)},
	"static/terminal.js":   {Data: []byte(`console.log(1)`)},
}

func newTestServer(t testing.TB, cfg Config) *Server {
	t.Helper()
	if cfg.Assets == nil {
		cfg.Assets = testAssets
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.store.Close() })
	return s
}

// do runs one request through the server's handler and decodes a JSON
// reply into a map (nil for other replies).
func do(t *testing.T, s *Server, r *http.Request) (*http.Response, map[string]any, string) {
	t.Helper()
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, r)
	res := w.Result()
	body, _ := io.ReadAll(res.Body)
	var m map[string]any
	if strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatalf("reply %q is not JSON: %v", body, err)
		}
	}
	return res, m, string(body)
}

func TestCreateCredentials(t *testing.T) {
	s := newTestServer(t, Config{})
	res, m, _ := do(t, s, jsonRequest(`{"hostname":"h","username":"u","password":"p","port":22}`))
	if res.StatusCode != 200 || m["success"] != true {
		t.Fatalf("got %d %v, want 200 success", res.StatusCode, m)
	}
	id, _ := m["connection_uuid"].(string)
	if u, err := uuid.Parse(id); err != nil || u.Version() != 4 {
		t.Errorf("got connection_uuid %q, want a UUID v4", id)
	}
	if m["url"] != "http://example.com/?connection="+id {
		t.Errorf("got url %v, want http://example.com/?connection=%s", m["url"], id)
	}
}

func TestCreateErrors(t *testing.T) {
	s := newTestServer(t, Config{MaxBodyBytes: 1024, MaxCredentials: 1})
	big := `{"hostname":"h","username":"u","password":"` + strings.Repeat("x", 2000) + `"}`
	tests := []struct {
		name       string
		path       string
		body       string
		ct         string
		chunked    bool
		wantStatus int
		wantBody   map[string]any
	}{
		{"bad json gen2", "/create-credentials", `{`, "application/json", false, 400, nil},
		{"415 gen2", "/create-credentials", `x`, "text/plain", false, 415,
			map[string]any{"success": false, "error": "Unsupported Content-Type: text/plain"}},
		{"415 is 400 in gen1", "/create-session", `x`, "text/plain", false, 400,
			map[string]any{"error": "Unsupported Content-Type: text/plain"}},
		{"missing field gen1", "/create-session", `{"username":"u","password":"p"}`, "application/json", false, 400,
			map[string]any{"error": "Missing field: hostname"}},
		{"too large", "/create-credentials", big, "application/json", false, 413, nil},
		{"too large chunked", "/create-credentials", big, "application/json", true, 413, nil},
		{"too large gen1", "/create-session", big, "application/json", false, 413, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, tt.path, strings.NewReader(tt.body))
			r.Header.Set("Content-Type", tt.ct)
			if tt.chunked {
				r.ContentLength = -1
			}
			res, m, body := do(t, s, r)
			if res.StatusCode != tt.wantStatus {
				t.Fatalf("got %d %s, want %d", res.StatusCode, body, tt.wantStatus)
			}
			if m == nil || m["error"] == nil {
				t.Fatalf("got body %q, want a JSON error", body)
			}
			if tt.path == "/create-credentials" && m["success"] != false {
				t.Errorf("got %v, want success false", m)
			}
			for k, v := range tt.wantBody {
				if m[k] != v {
					t.Errorf("got %s=%v, want %v", k, m[k], v)
				}
			}
			if tt.wantBody != nil && len(m) != len(tt.wantBody) {
				t.Errorf("got keys %v, want exactly %v", m, tt.wantBody)
			}
		})
	}
	// The store holds one entry: the second is refused with a 503.
	if res, _, _ := do(t, s, jsonRequest(`{"hostname":"h","username":"u","password":"p"}`)); res.StatusCode != 200 {
		t.Fatalf("got %d, want 200", res.StatusCode)
	}
	res, m, _ := do(t, s, jsonRequest(`{"hostname":"h","username":"u","password":"p"}`))
	if res.StatusCode != 503 || m["success"] != false {
		t.Errorf("got %d %v, want 503 success false", res.StatusCode, m)
	}
}

func TestCreateSessionGen1(t *testing.T) {
	s := newTestServer(t, Config{})
	r := multipartRequest(t, map[string]string{"hostname": "h", "username": "u", "port": "22"}, testKey(t))
	r.URL.Path = "/create-session"
	res, m, body := do(t, s, r)
	if res.StatusCode != 200 {
		t.Fatalf("got %d %s, want 200", res.StatusCode, body)
	}
	id, _ := m["create_session_id"].(string)
	if _, err := uuid.Parse(id); err != nil {
		t.Fatalf("got create_session_id %q, want a UUID", id)
	}
	if m["url"] != "http://example.com/"+id {
		t.Errorf("got url %v, want http://example.com/%s", m["url"], id)
	}
}

func TestForwardedURL(t *testing.T) {
	tests := []struct {
		name    string
		trusted []netip.Prefix
		want    string
	}{
		{"untrusted proxy", nil, "http://example.com/"},
		{"trusted proxy", []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}, "https://gw.example.org/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestServer(t, Config{TrustedProxies: tt.trusted})
			r := jsonRequest(`{"hostname":"h","username":"u","password":"p"}`)
			r.URL.Path = "/create-session"
			r.RemoteAddr = "192.0.2.1:1234"
			r.Header.Set("X-Forwarded-Proto", "https")
			r.Header.Set("X-Forwarded-Host", "gw.example.org")
			_, m, _ := do(t, s, r)
			if url, _ := m["url"].(string); !strings.HasPrefix(url, tt.want) {
				t.Errorf("got url %q, want prefix %q", url, tt.want)
			}
		})
	}
}

func TestTerminalPage(t *testing.T) {
	s := newTestServer(t, Config{})
	_, m, _ := do(t, s, jsonRequest(`{"hostname":"h","username":"u","password":"p"}`))
	id := m["connection_uuid"].(string)
	for _, path := range []string{"/?connection=" + id, "/" + id, "/?connection=" + id} {
		res, _, body := do(t, s, httptest.NewRequest(http.MethodGet, path, nil))
		if res.StatusCode != 200 || body != `<body data-id="`+id+`">` {
			t.Errorf("GET %s: got %d %q, want 200 and the page with the id", path, res.StatusCode, body)
		}
		if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
			t.Errorf("got Content-Type %q, want text/html", ct)
		}
		if res.Header.Get("X-Frame-Options") != "" {
			t.Error("got X-Frame-Options, want none: the page is embedded in iframes")
		}
	}
	if ok, _ := s.store.Has(t.Context(), id); !ok {
		t.Error("rendering the page consumed the credentials, want them kept")
	}
}

func TestTerminalPageUnknown(t *testing.T) {
	s := newTestServer(t, Config{})
	tests := []struct {
		path, wantErr string
	}{
		{"/?connection=nope", "Could not find stored credentials with ID nope"},
		{"/", "Could not find stored credentials with ID "},
		{"/0c2a6f0e-6f77-4b0c-9d0b-1f3c2a9f8e11", "Could not find stored credentials with ID 0c2a6f0e-6f77-4b0c-9d0b-1f3c2a9f8e11"},
	}
	for _, tt := range tests {
		res, m, body := do(t, s, httptest.NewRequest(http.MethodGet, tt.path, nil))
		if res.StatusCode != 404 || m["error"] != tt.wantErr {
			t.Errorf("GET %s: got %d %s, want 404 %q", tt.path, res.StatusCode, body, tt.wantErr)
		}
	}
	if _, m, _ := do(t, s, httptest.NewRequest(http.MethodGet, "/?connection=x", nil)); m["success"] != false {
		t.Errorf("got %v, want success false", m)
	}
}

func TestStaticAndErrors(t *testing.T) {
	s := newTestServer(t, Config{})
	tests := []struct {
		method, path string
		wantStatus   int
	}{
		{"GET", "/static/terminal.js", 200},
		{"GET", "/static/", 404},
		{"GET", "/static/missing.js", 404},
		{"GET", "/healthz", 200},
		{"GET", "/create-credentials", 405},
		{"PUT", "/create-session", 405},
	}
	for _, tt := range tests {
		res, _, body := do(t, s, httptest.NewRequest(tt.method, tt.path, nil))
		if res.StatusCode != tt.wantStatus {
			t.Errorf("%s %s: got %d %q, want %d", tt.method, tt.path, res.StatusCode, body, tt.wantStatus)
		}
	}
}

func TestCustomTemplate(t *testing.T) {
	s := newTestServer(t, Config{Template: []byte(`<script>start("{{ create_session_id }}")</script>`)})
	_, m, _ := do(t, s, jsonRequest(`{"hostname":"h","username":"u","password":"p"}`))
	id := m["connection_uuid"].(string)
	_, _, body := do(t, s, httptest.NewRequest(http.MethodGet, "/"+id, nil))
	if want := `<script>start("` + id + `")</script>`; body != want {
		t.Errorf("got %q, want %q", body, want)
	}
}

func TestPageCSP(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"own page", Config{}, ownPageCSP},
		{"own page, restricted framing", Config{FrameAncestors: []string{"'self'", "https://lab.example.com"}},
			ownPageCSP + "; frame-ancestors 'self' https://lab.example.com"},
		{"custom template", Config{Template: []byte("{{ credentials_uuid }}")}, ""},
		{"custom template, restricted framing", Config{Template: []byte("x"), FrameAncestors: []string{"'none'"}}, "frame-ancestors 'none'"},
		{"operator policy", Config{Template: []byte("x"), PageCSP: "script-src https://cdn.example.com"}, "script-src https://cdn.example.com"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestServer(t, tt.cfg)
			_, m, _ := do(t, s, jsonRequest(`{"hostname":"h","username":"u","password":"p"}`))
			res, _, _ := do(t, s, httptest.NewRequest(http.MethodGet, "/?connection="+m["connection_uuid"].(string), nil))
			if got := res.Header.Get("Content-Security-Policy"); got != tt.want {
				t.Errorf("got CSP %q, want %q", got, tt.want)
			}
			if got := res.Header.Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("got X-Content-Type-Options %q, want nosniff", got)
			}
		})
	}
}

func TestAPIToken(t *testing.T) {
	s := newTestServer(t, Config{APIToken: "tok-123"})
	tests := []struct {
		name, auth string
		want       int
	}{
		{"missing", "", 401},
		{"wrong", "Bearer tok-124", 401},
		{"not bearer", "Basic dG9rLTEyMw==", 401},
		{"right", "Bearer tok-123", 200},
	}
	for _, tt := range tests {
		for _, path := range []string{"/create-credentials", "/create-session"} {
			r := jsonRequest(`{"hostname":"h","username":"u","password":"p"}`)
			r.URL.Path = path
			if tt.auth != "" {
				r.Header.Set("Authorization", tt.auth)
			}
			res, m, body := do(t, s, r)
			if res.StatusCode != tt.want {
				t.Errorf("%s %s: got %d %s, want %d", tt.name, path, res.StatusCode, body, tt.want)
			}
			if tt.want == 401 && (m["error"] != "Missing or invalid API token" || res.Header.Get("WWW-Authenticate") == "") {
				t.Errorf("%s %s: got %v, want the token error with WWW-Authenticate", tt.name, path, m)
			}
		}
	}
}

func TestOrigins(t *testing.T) {
	s := newTestServer(t, Config{AllowedOrigins: []string{"https://lab.example.com"},
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("192.0.2.1/32")}})
	tests := []struct {
		name, origin, remote, fwdHost string
		want                          int
	}{
		{"no origin", "", "", "", 200},
		{"same origin", "http://example.com", "", "", 200},
		{"listed origin", "https://lab.example.com", "", "", 200},
		{"foreign origin", "https://evil.example.net", "", "", 403},
		{"null origin", "null", "", "", 403},
		{"same origin behind trusted proxy", "https://gw.example.org", "192.0.2.1:5555", "gw.example.org", 200},
		{"forwarded host from untrusted client", "https://gw.example.org", "198.51.100.9:5555", "gw.example.org", 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, path := range []string{"/create-credentials", "/socket.io/?EIO=4&transport=polling"} {
				var r *http.Request
				if strings.HasPrefix(path, "/socket.io") {
					r = httptest.NewRequest(http.MethodGet, path, nil)
				} else {
					r = jsonRequest(`{"hostname":"h","username":"u","password":"p"}`)
				}
				if tt.origin != "" {
					r.Header.Set("Origin", tt.origin)
				}
				if tt.remote != "" {
					r.RemoteAddr = tt.remote
				}
				if tt.fwdHost != "" {
					r.Header.Set("X-Forwarded-Host", tt.fwdHost)
				}
				w := httptest.NewRecorder()
				s.Handler().ServeHTTP(w, r)
				if w.Code != tt.want {
					t.Errorf("%s: got %d %s, want %d", path, w.Code, w.Body.String(), tt.want)
				}
			}
		})
	}
	// A listed origin gets CORS answers, preflight included.
	r := httptest.NewRequest(http.MethodOptions, "/create-credentials", nil)
	r.Header.Set("Origin", "https://lab.example.com")
	r.Header.Set("Access-Control-Request-Method", "POST")
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, r)
	if w.Code != 204 || w.Header().Get("Access-Control-Allow-Origin") != "https://lab.example.com" {
		t.Errorf("preflight: got %d %v, want 204 allowing the origin", w.Code, w.Header())
	}
}

func TestClientIP(t *testing.T) {
	s := newTestServer(t, Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
	tests := []struct {
		remote, xff, want string
	}{
		{"198.51.100.1:1", "", "198.51.100.1"},
		{"198.51.100.1:1", "203.0.113.5", "198.51.100.1"},               // untrusted peer: header ignored
		{"10.0.0.1:1", "203.0.113.5", "203.0.113.5"},                    // trusted proxy
		{"10.0.0.1:1", "1.2.3.4, 203.0.113.5, 10.0.0.2", "203.0.113.5"}, // nearest untrusted hop
		{"10.0.0.1:1", "garbage", "10.0.0.1"},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = tt.remote
		if tt.xff != "" {
			r.Header.Set("X-Forwarded-For", tt.xff)
		}
		if got := s.clientIP(r); got != tt.want {
			t.Errorf("remote %s, X-Forwarded-For %q: got %s, want %s", tt.remote, tt.xff, got, tt.want)
		}
	}
}
