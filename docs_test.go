package main

import (
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/alfresco-ssh/alfresco-ssh/internal/sshdtest"
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

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestDocsKeyFormats: the key algorithms and formats the README and
// PROTOCOL.md list are exactly the kinds TestSessionKeys logs in with
// against a real sshd (sshdtest.KeyKinds: "rsa-pem", "ed25519-openssh", ...).
func TestDocsKeyFormats(t *testing.T) {
	algos, formats := map[string]bool{}, map[string]bool{}
	for _, kind := range sshdtest.KeyKinds() {
		algo, format, _ := strings.Cut(kind, "-")
		algos[algo], formats[format] = true, true
	}
	words := map[string]string{"rsa": "RSA", "ecdsa": "ECDSA", "ed25519": "Ed25519", "pem": "PEM", "pkcs8": "PKCS#8", "openssh": "OpenSSH"}
	sentences := map[string]*regexp.Regexp{
		"README.md":   regexp.MustCompile(`private-key authentication \(([^()]*) keys, in ([^;]*) format`),
		"PROTOCOL.md": regexp.MustCompile("`ssh_key` is an ([^.]*) private key in ([^.]*) format"),
	}
	for file, re := range sentences {
		m := re.FindStringSubmatch(strings.Join(strings.Fields(readFile(t, file)), " "))
		if m == nil {
			t.Errorf("%s: no sentence listing the key algorithms and formats", file)
			continue
		}
		for _, set := range []struct {
			tested map[string]bool
			listed string
		}{{algos, m[1]}, {formats, m[2]}} {
			listed := regexp.MustCompile(`[A-Za-z0-9#]+`).FindAllString(regexp.MustCompile(`\([^)]*\)`).ReplaceAllString(set.listed, ""), -1)
			seen := map[string]bool{}
			for _, w := range listed {
				if w == "or" || w == "and" {
					continue
				}
				seen[w] = true
			}
			for name := range set.tested {
				if !seen[words[name]] {
					t.Errorf("%s: %q does not list %s, which works", file, set.listed, words[name])
				}
				delete(seen, words[name])
			}
			for w := range seen {
				t.Errorf("%s: %q lists %s, which is not tested", file, set.listed, w)
			}
		}
	}
}

// TestDocsGoVersion: the README names the Go version go.mod requires, and
// the Dockerfile builds with exactly that version.
func TestDocsGoVersion(t *testing.T) {
	m := regexp.MustCompile(`(?m)^go (\S+)$`).FindStringSubmatch(readFile(t, "go.mod"))
	if m == nil {
		t.Fatal("go.mod has no go line")
	}
	if want := "Go " + m[1] + " or later"; !strings.Contains(readFile(t, "README.md"), want) {
		t.Errorf("README.md does not say %q", want)
	}
	if want := "FROM golang:" + m[1] + " "; !strings.Contains(readFile(t, "Dockerfile"), want) {
		t.Errorf("Dockerfile does not build %q", want)
	}
}

// TestProtocolDoc: PROTOCOL.md is linked from the README and terminal.js,
// names every Socket.IO event the server handles or sends, and only flags
// that exist.
func TestProtocolDoc(t *testing.T) {
	doc := readFile(t, "PROTOCOL.md")
	if !strings.Contains(readFile(t, "README.md"), "](PROTOCOL.md)") {
		t.Error("README.md does not link PROTOCOL.md")
	}
	if !strings.Contains(readFile(t, "static/terminal.js"), "PROTOCOL.md") {
		t.Error("static/terminal.js does not point to PROTOCOL.md")
	}
	files, err := filepath.Glob("server/*.go")
	if err != nil {
		t.Fatal(err)
	}
	more, err := filepath.Glob("terminal/*.go")
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, more...)
	events := map[string]bool{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		for _, m := range regexp.MustCompile(`(?:\.(?:On|emit|Emit)\(|\bon\(sock, log, )"([a-z]+-[a-z-]+|resize|timeout)"`).FindAllStringSubmatch(readFile(t, f), -1) {
			events[m[1]] = true
		}
	}
	if len(events) < 4 {
		t.Fatalf("found the events %v in server/, want at least the four of generation 1", events)
	}
	for e := range events {
		if !strings.Contains(doc, "`"+e+"`") {
			t.Errorf("PROTOCOL.md does not describe the event %s", e)
		}
	}
	var o options
	fs := o.flagSet()
	for _, m := range regexp.MustCompile("`(--[a-z0-9-]+)").FindAllStringSubmatch(doc, -1) {
		if fs.Lookup(strings.TrimPrefix(m[1], "--")) == nil {
			t.Errorf("PROTOCOL.md names %s, which is not a flag", m[1])
		}
	}
}
