package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

const testKey = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4="

func TestOperationsFlags(t *testing.T) {
	key := map[string]string{"CREDENTIALS_KEY": testKey}
	tests := []struct {
		name       string
		args       []string
		env        map[string]string
		wantErr    string
		wantBase   string
		transports string
	}{
		{"defaults", nil, nil, "", "", "polling,websocket"},
		{"redis", []string{"--store", "redis://:pw@127.0.0.1:6379/0"}, key, "", "", "polling,websocket"},
		{"rediss", []string{"--store", "rediss://redis.example:6380/1"}, key, "", "", "polling,websocket"},
		{"redis without key", []string{"--store", "redis://127.0.0.1:6379/0"}, nil, "CREDENTIALS_KEY", "", ""},
		{"bad store", []string{"--store", "postgres://x"}, key, "--store", "", ""},
		{"store without host", []string{"--store", "redis://"}, key, "--store", "", ""},
		{"websocket only", []string{"--transports", "websocket"}, nil, "", "", "websocket"},
		{"transports from env", nil, map[string]string{"ALFRESCO_SSH_TRANSPORTS": " websocket , polling"}, "", "", "websocket,polling"},
		{"bad transport", []string{"--transports", "websocket,flash"}, nil, "--transports", "", ""},
		{"twice", []string{"--transports", "websocket,websocket"}, nil, "--transports", "", ""},
		{"no transport", []string{"--transports", ""}, nil, "--transports", "", ""},
		{"base path", []string{"--base-path", "/lab/terminal/"}, nil, "", "/lab/terminal", "polling,websocket"},
		{"root base path", []string{"--base-path", "/"}, nil, "", "", "polling,websocket"},
		{"relative base path", []string{"--base-path", "lab"}, nil, "--base-path", "", ""},
		{"dot dot", []string{"--base-path", "/lab/../x"}, nil, "--base-path", "", ""},
		{"double slash", []string{"--base-path", "/lab//x"}, nil, "--base-path", "", ""},
		{"query", []string{"--base-path", "/lab?x=1"}, nil, "--base-path", "", ""},
		{"negative drain", []string{"--drain-grace", "-1s"}, nil, "--drain-grace", "", ""},
		{"no drain", []string{"--drain-grace", "0", "--drain-timeout", "0"}, nil, "", "", "polling,websocket"},
		{"node name too long", []string{"--node-name", strings.Repeat("n", 64)}, nil, "--node-name", "", ""},
		{"node name with a space", []string{"--node-name", "node 1"}, nil, "--node-name", "", ""},
		{"node name with a query", []string{"--node-name", "a&node=b"}, nil, "--node-name", "", ""},
		{"node name with a semicolon", []string{"--node-name", "a;"}, nil, "--node-name", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			getenv := env(tt.env)
			o, err := parseFlags(tt.args, getenv, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			cfg, _, err := o.config(getenv)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %v, want an error mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.BasePath != tt.wantBase || strings.Join(cfg.Transports, ",") != tt.transports {
				t.Errorf("got base %q, transports %q; want %q, %q", cfg.BasePath, cfg.Transports, tt.wantBase, tt.transports)
			}
		})
	}
}

// TestRunMetrics runs the program with metrics on a listener of their own
// and a base path: requests show in the scrape by route name.
func TestRunMetrics(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--port", "0", "--metrics-addr", "127.0.0.1:0", "--base-path", "/lab"}, env(nil), io.Discard, pw)
		pw.Close()
	}()
	lines := bufio.NewScanner(pr)
	addrs := map[string]string{}
	re := regexp.MustCompile(`msg="?(listening|metrics listening)"? addr=(\S+)`)
	for len(addrs) < 2 && lines.Scan() {
		if m := re.FindStringSubmatch(lines.Text()); m != nil {
			addrs[m[1]] = "http://" + m[2]
		}
	}
	go io.Copy(io.Discard, pr)
	base, metricsURL := addrs["listening"], addrs["metrics listening"]
	if base == "" || metricsURL == "" {
		t.Fatalf("got addresses %v, want the server's and the metrics'", addrs)
	}
	for _, path := range []string{"/lab/livez", "/lab/livez", "/lab/readyz", "/livez"} {
		res, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
	}
	res, err := http.Get(metricsURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	for _, want := range []string{
		`alfresco_ssh_http_requests_total{code="200",route="livez"} 2`,
		`alfresco_ssh_http_requests_total{code="200",route="readyz"} 1`,
		`alfresco_ssh_http_requests_total{code="404",route="other"} 1`,
		`alfresco_ssh_build_info{version="` + version + `"} 1`,
		`alfresco_ssh_credentials_pending 0`,
	} {
		if !strings.Contains(string(body), want+"\n") {
			t.Errorf("the scrape has no line %s:\n%s", want, body)
		}
	}
	if res, err := http.Get(base + "/metrics"); err == nil {
		res.Body.Close()
		if res.StatusCode != http.StatusNotFound {
			t.Errorf("GET /metrics on the main listener: got %d, want 404", res.StatusCode)
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
