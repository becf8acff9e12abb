package sshdtest

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/alfresco-ssh/alfresco-ssh/internal/testdeps"
)

// TestMain fails when the tests leave goroutines behind: a Server's
// cleanup must stop everything it started.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(testdeps.Main(m))
}
