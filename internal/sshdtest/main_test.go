package sshdtest

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails when the tests leave goroutines behind: a Server's
// cleanup must stop everything it started.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
