package server

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// The Socket.IO library runs each of its timers (ping, upgrade,
		// connect timeouts) on a goroutine that ends when the timer fires
		// or is cleared; a few are still pending right after Close.
		goleak.IgnoreTopFunction("github.com/zishang520/socket.io/v3/pkg/utils.SetTimeout.func1"))
}
