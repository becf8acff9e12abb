// Package waitfor is the tests' wait on a condition that has no event of
// its own to wait on.
package waitfor

import (
	"testing"
	"time"
)

// Cond polls cond every 10 ms until it holds, failing t after 10 seconds.
func Cond(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
