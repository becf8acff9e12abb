package servicetest

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

// CheckMetrics runs Prometheus's linter, promtool check metrics (Debian's
// prometheus), on a scrape and fails the test on what it reports.
func CheckMetrics(t testing.TB, text string) {
	t.Helper()
	cmd := exec.Command(lookBinary(t, "promtool", "prometheus"), "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out.String())
	}
}
