package server

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/alfresco-ssh/alfresco-ssh/credstore"
)

func getReq(path string) *http.Request { return httptest.NewRequest(http.MethodGet, path, nil) }

func post(path, ct, body string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	r.Header.Set("Content-Type", ct)
	return r
}

const loginJSON = `{"hostname":"h","username":"u","password":"p"}`

func TestHealth(t *testing.T) {
	s := newTestServer(t, Config{})
	for _, tc := range []struct {
		path, want string
		status     int
	}{
		{"/livez", "ok\n", 200},
		{"/readyz", "ready\n", 200},
		{"/healthz", "ok\n", 200},
	} {
		if res, _, body := do(t, s, getReq(tc.path)); res.StatusCode != tc.status || body != tc.want {
			t.Errorf("GET %s: got %d %q, want %d %q", tc.path, res.StatusCode, body, tc.status, tc.want)
		}
	}
	s.draining.Store(true)
	if res, _, body := do(t, s, getReq("/readyz")); res.StatusCode != 503 || body != "draining\n" {
		t.Errorf("GET /readyz while draining: got %d %q, want 503", res.StatusCode, body)
	}
	if res, _, _ := do(t, s, getReq("/livez")); res.StatusCode != 200 {
		t.Errorf("GET /livez while draining: got %d, want 200", res.StatusCode)
	}
}

// TestStoreUnavailable: with a Redis store nobody answers for, creation,
// the page and readiness answer 503 with a clear reason.
func TestStoreUnavailable(t *testing.T) {
	store, err := credstore.NewRedis(fmt.Sprintf("redis://127.0.0.1:%d/0", closedPort(t)), bytes.Repeat([]byte{1}, 32), time.Minute, 10)
	if err != nil {
		t.Fatal(err)
	}
	s := newTestServer(t, Config{Store: store})
	down := map[string]any{"success": false, "error": "Credential store unavailable, try again later"}
	tests := []struct {
		name string
		r    *http.Request
		want map[string]any
	}{
		{"create gen2", jsonRequest(loginJSON), down},
		{"create gen1", post("/create-session", "application/json", loginJSON),
			map[string]any{"error": "Credential store unavailable, try again later"}},
		{"page gen2", getReq("/?connection=8d0c9a6e-1f6f-4b53-9a38-6e2f2c1f0a11"), down},
		{"page gen1", getReq("/8d0c9a6e-1f6f-4b53-9a38-6e2f2c1f0a11"),
			map[string]any{"error": "Credential store unavailable, try again later"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, m, _ := do(t, s, tc.r)
			if res.StatusCode != 503 || fmt.Sprint(m) != fmt.Sprint(tc.want) {
				t.Errorf("got %d %v, want 503 %v", res.StatusCode, m, tc.want)
			}
		})
	}
	if res, _, body := do(t, s, getReq("/readyz")); res.StatusCode != 503 || body != "credential store unreachable\n" {
		t.Errorf("GET /readyz: got %d %q, want 503", res.StatusCode, body)
	}
	if res, _, _ := do(t, s, getReq("/livez")); res.StatusCode != 200 {
		t.Errorf("GET /livez: got %d, want 200", res.StatusCode)
	}
}

// TestBasePath serves everything under /lab/terminal and nothing at the
// root.
func TestBasePath(t *testing.T) {
	assets := fstest.MapFS{
		"templates/index.html": {Data: []byte(`<script src="{{ url_for('static', filename='terminal.js') }}" data-id="{{ credentials_uuid }}" data-config="{{ page_config }}">`)},
		"static/terminal.js":   {Data: []byte(`console.log(1)`)},
	}
	s := newTestServer(t, Config{Assets: assets, BasePath: "/lab/terminal"})
	res, m, _ := do(t, s, post("/lab/terminal/create-credentials", "application/json", loginJSON))
	id, _ := m["connection_uuid"].(string)
	if res.StatusCode != 200 || m["url"] != "http://example.com/lab/terminal/?connection="+id {
		t.Fatalf("create: got %d %v, want 200 with url http://example.com/lab/terminal/?connection=<id>", res.StatusCode, m)
	}
	res, m, _ = do(t, s, post("/lab/terminal/create-session", "application/json", loginJSON))
	id1, _ := m["create_session_id"].(string)
	if res.StatusCode != 200 || m["url"] != "http://example.com/lab/terminal/"+id1 {
		t.Fatalf("create-session: got %d %v, want 200 with url http://example.com/lab/terminal/<id>", res.StatusCode, m)
	}
	page := `<script src="/lab/terminal/static/terminal.js" data-id="` + id + `" data-config="{&#34;basePath&#34;:&#34;/lab/terminal&#34;}">`
	for _, tc := range []struct {
		path, body string
		status     int
	}{
		{"/lab/terminal/?connection=" + id, page, 200},
		{"/lab/terminal/" + id1, strings.Replace(page, id, id1, 1), 200},
		{"/lab/terminal/static/terminal.js", "console.log(1)", 200},
		{"/lab/terminal/livez", "ok\n", 200},
		{"/lab/terminal/readyz", "ready\n", 200},
		{"/lab/terminal/socket.io/?EIO=4&transport=polling", "", 200},
		{"/?connection=" + id, "", 404},
		{"/" + id1, "", 404},
		{"/static/terminal.js", "", 404},
		{"/livez", "", 404},
		{"/readyz", "", 404},
		{"/socket.io/?EIO=4&transport=polling", "", 404},
		{"/lab/terminal/static/", "", 404},
	} {
		res, _, body := do(t, s, getReq(tc.path))
		if res.StatusCode != tc.status || tc.body != "" && body != tc.body {
			t.Errorf("GET %s: got %d %q, want %d %q", tc.path, res.StatusCode, truncate(body, 200), tc.status, tc.body)
		}
	}
	if res, _, _ := do(t, s, post("/create-credentials", "application/json", loginJSON)); res.StatusCode != 404 {
		t.Errorf("POST /create-credentials at the root: got %d, want 404", res.StatusCode)
	}
	// The generation-1 error shape holds under the prefix.
	if res, m, _ := do(t, s, post("/lab/terminal/create-session", "text/plain", "x")); res.StatusCode != 400 || m["error"] != "Unsupported Content-Type: text/plain" || m["success"] != nil {
		t.Errorf("create-session, text/plain: got %d %v, want 400 {error}", res.StatusCode, m)
	}
	res, _, _ = do(t, s, getReq("/lab/terminal?connection="+id))
	if loc := res.Header.Get("Location"); res.StatusCode != 301 || loc != "/lab/terminal/?connection="+id {
		t.Errorf("GET /lab/terminal?connection=: got %d to %q, want 301 to /lab/terminal/?connection=<id>", res.StatusCode, loc)
	}
}

type recordedRequests struct {
	mu   sync.Mutex
	seen []string
}

func (r *recordedRequests) Request(route string, code int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen = append(r.seen, fmt.Sprintf("%s %d", route, code))
}

// TestCountRequests: every request is counted under a fixed route name
// with its final status, under a base path too.
func TestCountRequests(t *testing.T) {
	for _, base := range []string{"", "/lab"} {
		t.Run("base "+base, func(t *testing.T) {
			outside := "page_gen1 404" // Echo's /:id takes any path
			if base != "" {
				outside = "other 404"
			}
			rec := &recordedRequests{}
			s := newTestServer(t, Config{Requests: rec, BasePath: base})
			_, m, _ := do(t, s, post(base+"/create-credentials", "application/json", loginJSON))
			id, _ := m["connection_uuid"].(string)
			for _, r := range []*http.Request{
				post(base+"/create-credentials", "application/json", "{"),
				post(base+"/create-session", "application/json", loginJSON),
				getReq(base + "/?connection=" + id),
				getReq(base + "/?connection=nope"),
				getReq(base + "/8d0c9a6e-1f6f-4b53-9a38-6e2f2c1f0a11"),
				getReq(base + "/static/terminal.js"),
				getReq(base + "/livez"),
				getReq(base + "/readyz"),
				post(base+"/no/such/path", "text/plain", ""),
				getReq("/outside/the/base"),
				getReq(base + "/socket.io/?EIO=4&transport=polling"),
				httptest.NewRequest(http.MethodDelete, base+"/create-session", nil),
			} {
				do(t, s, r)
			}
			want := []string{"create_credentials 200", "create_credentials 400", "create_session 200",
				"page 200", "page 404", "page_gen1 404", "static 200", "livez 200", "readyz 200",
				"page_gen1 405", outside, "socket_io 200", "create_session 405"}
			rec.mu.Lock()
			defer rec.mu.Unlock()
			if !slices.Equal(rec.seen, want) {
				t.Errorf("got %q, want %q", rec.seen, want)
			}
		})
	}
}

// TestWebsocketOnly: with --transports websocket a polling handshake is
// refused.
func TestWebsocketOnly(t *testing.T) {
	s := newTestServer(t, Config{Transports: []string{"websocket"}})
	if res, _, body := do(t, s, getReq("/socket.io/?EIO=4&transport=polling")); res.StatusCode != 400 {
		t.Errorf("polling handshake: got %d %q, want 400", res.StatusCode, body)
	}
}
