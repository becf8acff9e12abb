package main

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// TestAllowedHostsDefault: on loopback the gateway answers only to
// localhost, 127.0.0.1 and [::1] with its port; beyond loopback to any
// name, with a warning at start-up.
func TestAllowedHostsDefault(t *testing.T) {
	logs := startMain(t, mainCommand(t, nil, "--port", "0"))
	addr := regexp.MustCompile(`msg=listening addr=(\S+)`).FindStringSubmatch(logs)[1]
	port := addr[strings.LastIndex(addr, ":")+1:]
	for host, want := range map[string]int{"localhost:" + port: 200, "127.0.0.1:" + port: 200,
		"rebound.example.net:" + port: 421, "localhost:1" + port: 421} {
		r, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+addr+"/static/terminal.js", nil)
		if err != nil {
			t.Fatal(err)
		}
		r.Host = host
		res, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != want {
			t.Errorf("Host %s: got %d, want %d", host, res.StatusCode, want)
		}
	}
	if strings.Contains(logs, "any host name is accepted") {
		t.Errorf("got a warning about host names on loopback:\n%s", logs)
	}

	for args, warn := range map[string]bool{"--host localnetwork": true, "--host localnetwork --allowed-hosts gw.example.org": false,
		"--host localnetwork --allowed-hosts *": false} {
		logs := startMain(t, mainCommand(t, nil, append(strings.Fields(args), "--port", "0")...))
		if got := strings.Contains(logs, "any host name is accepted"); got != warn {
			t.Errorf("%s: got warning %v, want %v:\n%s", args, got, warn, logs)
		}
	}
}
