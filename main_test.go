package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/alfresco-ssh/alfresco-ssh/internal/testdeps"
)

func TestMain(m *testing.M) {
	if os.Getenv(asMainEnv) == "1" {
		main() // the test binary plays the program; see runMain
		os.Exit(0)
	}
	goleak.VerifyTestMain(testdeps.Main(m),
		// Socket.IO library timers; each ends when it fires or is cleared.
		goleak.IgnoreTopFunction("github.com/zishang520/socket.io/v3/pkg/utils.SetTimeout.func1"))
}

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	if err := run(t.Context(), []string{"--version"}, env(nil), &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != "alfresco-ssh "+buildVersion()+"\n" {
		t.Errorf("got %q, want the version line", got)
	}
}

func TestFlagsAndEnvironment(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		env      map[string]string
		wantAddr string
		wantErr  string
	}{
		{"defaults", nil, nil, "127.0.0.1:5000", ""},
		{"localnetwork", []string{"--host", "localnetwork", "--port", "8080"}, nil, ":8080", ""},
		{"literal ip", []string{"--host", "::1"}, nil, "[::1]:5000", ""},
		{"env", nil, map[string]string{"ALFRESCO_SSH_PORT": "6000", "ALFRESCO_SSH_HOST": "0.0.0.0"}, "0.0.0.0:6000", ""},
		{"flag beats env", []string{"--port", "7000"}, map[string]string{"ALFRESCO_SSH_PORT": "6000"}, "127.0.0.1:7000", ""},
		{"bad env", nil, map[string]string{"ALFRESCO_SSH_SSH_TIMEOUT": "soon"}, "", "ALFRESCO_SSH_SSH_TIMEOUT"},
		{"bad host", []string{"--host", "example.com"}, nil, "", "--host"},
		{"bad port", []string{"--port", "70000"}, nil, "", "--port"},
		{"bad ttl", []string{"--credentials-ttl", "-1s"}, nil, "", "--credentials-ttl"},
		{"bad term", []string{"--term", "a b"}, nil, "", "--term"},
		{"missing template", []string{"--template", "/nonexistent/page.html"}, nil, "", "--template"},
		{"bad proxies", []string{"--trusted-proxies", "10.0.0.0/33"}, nil, "", "--trusted-proxies"},
		{"bad frame ancestors", []string{"--frame-ancestors", "a;b"}, nil, "", "--frame-ancestors"},
		{"missing token file", []string{"--api-token-file", "/nonexistent/token"}, nil, "", "--api-token-file"},
		{"multi-line csp", []string{"--page-csp", "a\nb"}, nil, "", "--page-csp"},
		{"bad allow rule", []string{"--allow-targets", "10.0.0.0/40"}, nil, "", "--allow-targets"},
		{"bad deny rule", []string{"--deny-targets", "host:0"}, nil, "", "--deny-targets"},
		{"tls cert without key", []string{"--tls-cert", "c.pem"}, nil, "", "--tls-key"},
		{"negative limit", []string{"--max-sessions", "-1"}, nil, "", "--max-sessions"},
		{"client prefixes", []string{"--client-prefix-v4", "24", "--client-prefix-v6", "56"}, nil, "127.0.0.1:5000", ""},
		{"bad v4 prefix", []string{"--client-prefix-v4", "33"}, nil, "", "--client-prefix-v4"},
		{"zero v6 prefix", nil, map[string]string{"ALFRESCO_SSH_CLIENT_PREFIX_V6": "0"}, "", "--client-prefix-v6"},
		{"negative spare procs", []string{"--spare-procs", "-1"}, nil, "", "--spare-procs"},
		{"negative gc floor", nil, map[string]string{"ALFRESCO_SSH_GC_HEAP_FLOOR_MIB": "-1"}, "", "--gc-heap-floor-mib"},
		{"stray argument", []string{"serve"}, nil, "", "unexpected argument"},
		{"fernet key", nil, map[string]string{"CREDENTIALS_KEY": "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4="}, "127.0.0.1:5000", ""},
		{"short key", nil, map[string]string{"CREDENTIALS_KEY": "c2hvcnQ="}, "", "CREDENTIALS_KEY must be a Fernet key"},
		{"garbage key", nil, map[string]string{"CREDENTIALS_KEY": "not base64!"}, "", "CREDENTIALS_KEY must be a Fernet key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			getenv := env(tt.env)
			o, err := parseFlags(tt.args, getenv, io.Discard)
			var addr string
			if err == nil {
				_, addr, err = o.config(getenv)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %v, want an error mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if addr != tt.wantAddr {
				t.Errorf("got address %q, want %q", addr, tt.wantAddr)
			}
		})
	}
}

// TestTokensTrimmed: a token given with the newline a secret file or
// variable often carries still matches what clients send (trimmed).
func TestTokensTrimmed(t *testing.T) {
	getenv := env(map[string]string{"ALFRESCO_SSH_API_TOKEN": " api-token\n", "ALFRESCO_SSH_ADMIN_TOKEN": "admin-token\r\n"})
	o, err := parseFlags(nil, getenv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _, err := o.config(getenv)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.APIToken != "api-token" || cfg.AdminToken != "admin-token" {
		t.Errorf("got API token %q, admin token %q; want them trimmed", cfg.APIToken, cfg.AdminToken)
	}
}

// TestRunServesAndStops runs the whole program on a loopback port: it
// serves the embedded page and assets, and stops cleanly when its context
// ends (as on SIGTERM).
func TestRunServesAndStops(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--port", "0", "--debug"}, env(nil), io.Discard, pw)
		pw.Close()
	}()
	// The first log line names the address.
	lines := bufio.NewScanner(pr)
	var base string
	for lines.Scan() {
		if m := regexp.MustCompile(`msg=listening addr=(\S+)`).FindStringSubmatch(lines.Text()); m != nil {
			base = "http://" + m[1]
			break
		}
	}
	if base == "" {
		t.Fatal("got no listening line in the log")
	}
	go io.Copy(io.Discard, pr)

	res, err := http.Post(base+"/create-credentials", "application/json",
		strings.NewReader(`{"hostname":"127.0.0.1","username":"u","password":"secret-pw"}`))
	if err != nil {
		t.Fatal(err)
	}
	var created map[string]any
	json.NewDecoder(res.Body).Decode(&created)
	res.Body.Close()
	id, _ := created["connection_uuid"].(string)
	if res.StatusCode != 200 || id == "" {
		t.Fatalf("got %d %v, want 200 with an id", res.StatusCode, created)
	}
	for _, path := range []string{"/?connection=" + id, "/static/terminal.js", "/static/vendor/xterm/xterm.js", "/static/vendor/socket.io/socket.io.min.js"} {
		res, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || len(body) == 0 {
			t.Errorf("GET %s: got %d with %d bytes, want 200 with content", path, res.StatusCode, len(body))
		}
		if strings.Contains(string(body), "{{") && strings.HasPrefix(path, "/?") {
			t.Errorf("GET %s: page still holds a template placeholder", path)
		}
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("got %v, want a clean stop", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("run did not return after its context ended")
	}
}

func TestAssetsHaveNoCDN(t *testing.T) {
	for _, name := range []string{"templates/index.html", "static/terminal.js", "static/terminal.css"} {
		b, err := assets.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if m := regexp.MustCompile(`https?://[^\s"')]+`).FindString(string(b)); m != "" {
			t.Errorf("%s loads %s, want only embedded assets", name, m)
		}
	}
}
