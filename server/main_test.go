package server

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/alfresco-ssh/alfresco-ssh/internal/testdeps"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(testdeps.Main(m),
		// The Socket.IO library runs each of its timers (ping, upgrade,
		// connect timeouts) on a goroutine that ends when the timer fires
		// or is cleared; a few are still pending right after Close.
		goleak.IgnoreTopFunction("github.com/zishang520/socket.io/v3/pkg/utils.SetTimeout.func1"))
}
