package main

import (
	"io"
	"strings"
	"testing"
)

// TestNodeNameFlag: --node-name reaches the server configuration (names
// it refuses: TestOperationsFlags).
func TestNodeNameFlag(t *testing.T) {
	for _, name := range []string{"", "node1", "gw-2.eu_west", strings.Repeat("n", 63)} {
		o, err := parseFlags([]string{"--node-name", name}, env(nil), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if cfg, _, err := o.config(env(nil)); err != nil || cfg.NodeName != name {
			t.Errorf("--node-name %q: got %q, %v", name, cfg.NodeName, err)
		}
	}
}
