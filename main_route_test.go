package main

import (
	"io"
	"strings"
	"testing"
)

// TestNodeNameFlag: --node-name reaches the server configuration, and a
// name that a URL query or an nginx map could not carry as it is stops
// startup.
func TestNodeNameFlag(t *testing.T) {
	for _, tt := range []struct {
		name, value, wantErr string
	}{
		{"none", "", ""},
		{"plain", "node1", ""},
		{"dotted", "gw-2.eu_west", ""},
		{"longest", strings.Repeat("n", 63), ""},
		{"too long", strings.Repeat("n", 64), "--node-name"},
		{"space", "node 1", "--node-name"},
		{"query", "a&node=b", "--node-name"},
		{"semicolon", "a;", "--node-name"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			getenv := env(nil)
			o, err := parseFlags([]string{"--node-name", tt.value}, getenv, io.Discard)
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
			if err != nil || cfg.NodeName != tt.value {
				t.Errorf("got %q, %v; want %q", cfg.NodeName, err, tt.value)
			}
		})
	}
}
