package main

import (
	"flag"
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestREADMEListsEveryFlag: the README's configuration table has a row for
// every flag, with its environment variable.
func TestREADMEListsEveryFlag(t *testing.T) {
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	// Rows whose first cell holds only flags: "| `--tls-cert`, `--tls-key` | ...".
	rows := map[string]string{} // flag name: the variables cell
	for _, m := range regexp.MustCompile("(?m)^\\| ((?:`--[a-z0-9-]+`(?:, )?)+) \\|([^|]*)\\|").FindAllStringSubmatch(string(b), -1) {
		for _, name := range regexp.MustCompile("`--([a-z0-9-]+)`").FindAllStringSubmatch(m[1], -1) {
			rows[name[1]] = m[2]
		}
	}
	var o options
	o.flagSet().VisitAll(func(f *flag.Flag) {
		vars, ok := rows[f.Name]
		if !ok {
			t.Errorf("README.md: no row for --%s in the configuration table", f.Name)
			return
		}
		if env := envName(f.Name); env != "" && !strings.Contains(vars, "`"+env+"`") {
			t.Errorf("README.md: the row of --%s does not name %s", f.Name, env)
		}
	})
}
