package server

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

// loopbackHosts is what main allows by default on 127.0.0.1:5000.
var loopbackHosts = []string{"localhost:5000", "127.0.0.1:5000", "[::1]:5000"}

// TestAllowedHosts: a page whose name was made to resolve to a loopback
// gateway (DNS rebinding) sends its own name as Host; the gateway refuses
// it, on every route but the health check.
func TestAllowedHosts(t *testing.T) {
	s := newTestServer(t, Config{AllowedHosts: loopbackHosts})
	tests := []struct {
		host string
		want int
	}{
		{"localhost:5000", 404},
		{"LocalHost:5000", 404},
		{"127.0.0.1:5000", 404},
		{"[::1]:5000", 404},
		{"rebound.example.net:5000", 421},
		{"localhost:5001", 421},
		{"localhost", 421}, // port 80
		{"127.0.0.2:5000", 421},
		{"", 421},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(http.MethodGet, "/?connection=x", nil)
		r.Host = tt.host
		res, m, body := do(t, s, r)
		if res.StatusCode != tt.want {
			t.Errorf("Host %q: got %d %s, want %d", tt.host, res.StatusCode, body, tt.want)
		}
		if tt.want == 421 && (m["success"] != false || !strings.HasPrefix(m["error"].(string), "Unknown host name")) {
			t.Errorf("Host %q: got %s, want the JSON error", tt.host, body)
		}
	}
	for _, path := range []string{"/create-credentials", "/socket.io/?EIO=4&transport=polling", "/static/terminal.js", "/create-session"} {
		r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(`{"hostname":"h","username":"u","password":"p"}`))
		r.Header.Set("Content-Type", "application/json")
		r.Host = "rebound.example.net:5000"
		if res, _, body := do(t, s, r); res.StatusCode != 421 {
			t.Errorf("POST %s for a foreign host: got %d %s, want 421", path, res.StatusCode, body)
		}
	}
	r := httptest.NewRequest(http.MethodGet, "/healthz", nil)
	r.Host = "10.1.2.3:5000" // a probe addressing the gateway by its IP
	if res, _, _ := do(t, s, r); res.StatusCode != 200 {
		t.Errorf("/healthz: got %d, want 200 for any host", res.StatusCode)
	}
	r = httptest.NewRequest(http.MethodGet, "/?connection=x", nil)
	r.Host = "rebound.example.net:5000"
	r.Header.Set("Accept", browserAccept)
	if res, _, body := do(t, s, r); res.StatusCode != 421 || !strings.Contains(body, "<h1>421 Misdirected Request</h1>") {
		t.Errorf("browser: got %d %q, want the 421 page", res.StatusCode, body)
	}
}

func TestAllowedHostsBehindProxy(t *testing.T) {
	s := newTestServer(t, Config{AllowedHosts: []string{"gw.example.org"},
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("192.0.2.1/32")}})
	tests := []struct {
		name, remote, host, fwdHost string
		want                        int
	}{
		{"forwarded host from the proxy", "192.0.2.1:4000", "127.0.0.1:5000", "gw.example.org", 200},
		{"forwarded host with a port", "192.0.2.1:4000", "127.0.0.1:5000", "gw.example.org:8443", 200},
		{"foreign forwarded host from the proxy", "192.0.2.1:4000", "gw.example.org", "rebound.example.net", 421},
		{"forwarded host from another client", "198.51.100.9:4000", "rebound.example.net", "gw.example.org", 421},
		{"direct, allowed Host", "198.51.100.9:4000", "gw.example.org", "", 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/static/terminal.js", nil)
			r.RemoteAddr, r.Host = tt.remote, tt.host
			if tt.fwdHost != "" {
				r.Header.Set("X-Forwarded-Host", tt.fwdHost)
			}
			if res, _, body := do(t, s, r); res.StatusCode != tt.want {
				t.Errorf("got %d %s, want %d", res.StatusCode, body, tt.want)
			}
		})
	}
}

// TestOriginAgainstAllowedHosts: with allowed hosts, an origin is the
// gateway's own when its host is allowed, whatever the Host header says.
func TestOriginAgainstAllowedHosts(t *testing.T) {
	s := newTestServer(t, Config{AllowedHosts: loopbackHosts})
	tests := []struct {
		origin string
		want   int
	}{
		{"http://localhost:5000", 200},
		{"http://127.0.0.1:5000", 200},
		{"http://[::1]:5000", 200},
		{"http://localhost:5001", 403},
		{"http://rebound.example.net:5000", 403},
		{"null", 403},
	}
	for _, tt := range tests {
		r := jsonRequest(`{"hostname":"h","username":"u","password":"p"}`)
		r.Host = "localhost:5000"
		r.Header.Set("Origin", tt.origin)
		if res, _, body := do(t, s, r); res.StatusCode != tt.want {
			t.Errorf("Origin %s: got %d %s, want %d", tt.origin, res.StatusCode, body, tt.want)
		}
	}
}

func TestParseAllowedHosts(t *testing.T) {
	tests := []struct {
		in      []string
		want    []allowedHost
		wantErr bool
	}{
		{nil, nil, false},
		{[]string{"*"}, nil, false},
		{[]string{"gw.example.org", "*"}, nil, false},
		{[]string{"GW.example.org", "localhost:5000", "[::1]:5000", "[::1]"},
			[]allowedHost{{"gw.example.org", ""}, {"localhost", "5000"}, {"::1", "5000"}, {"::1", ""}}, false},
		{[]string{"a b"}, nil, true},
		{[]string{"host:0"}, nil, true},
		{[]string{"host:http"}, nil, true},
		{[]string{"https://gw.example.org"}, nil, true},
		{[]string{""}, nil, true},
	}
	for _, tt := range tests {
		got, err := parseAllowedHosts(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("%q: got error %v, want error %v", tt.in, err, tt.wantErr)
			continue
		}
		if len(got) != len(tt.want) {
			t.Errorf("%q: got %v, want %v", tt.in, got, tt.want)
			continue
		}
		for i := range got {
			if got[i] != tt.want[i] {
				t.Errorf("%q: got %v, want %v", tt.in, got, tt.want)
			}
		}
	}
}
