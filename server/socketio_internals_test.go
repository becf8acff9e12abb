package server

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zishang520/socket.io/servers/engine/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// verifiedSocketIO is the version of the Socket.IO server modules that
// connectGate, serialPolling and heldWebsocket were written against.
const verifiedSocketIO = "v3.0.6"

// TestSocketIOInternals fails when the Socket.IO server library changes
// something that connectGate, serialPolling or heldWebsocket rely on. The
// rest is checked where it is used: the upgrade steps by TestUpgradeOrder,
// the transport's calls through its prototype by TestSerialPolling.
func TestSocketIOInternals(t *testing.T) {
	t.Run("versions", func(t *testing.T) {
		mod, err := os.ReadFile("../go.mod")
		if err != nil {
			t.Fatal(err)
		}
		found := 0
		for line := range strings.Lines(string(mod)) {
			f := strings.Fields(line)
			if len(f) < 2 || !slices.Contains([]string{
				"github.com/zishang520/socket.io/servers/engine/v3", "github.com/zishang520/socket.io/servers/socket/v3",
			}, f[0]) {
				continue
			}
			found++
			if f[1] != verifiedSocketIO {
				t.Errorf("go.mod requires %s %s: check connectGate, serialPolling and heldWebsocket against it "+
					"(each says what it relies on, with the library's file and function), then set verifiedSocketIO", f[0], f[1])
			}
		}
		if found != 2 {
			t.Errorf("found %d of the 2 Socket.IO server modules in go.mod, want both", found)
		}
	})

	t.Run("an event reaches the listeners it was emitted to", func(t *testing.T) {
		// serialPolling counts a drain before the connection's listener
		// sees it; Discard may then let the connection remove that
		// listener, which must still get the drain.
		e := types.NewEventEmitter()
		var later bool
		second := func(...any) { later = true }
		e.On("drain", func(...any) { e.RemoveListener("drain", second) })
		e.On("drain", second)
		e.Emit("drain")
		if !later {
			t.Error("got a listener removed during an event not called, want called")
		}
	})

	t.Run("the connection's packets pass the gate first", func(t *testing.T) {
		g := startGateway(t, Config{})
		listeners := make(chan int, 1)
		g.srv.io.Engine().On("connection", func(args ...any) {
			if conn, ok := args[0].(engine.Socket); ok {
				listeners <- len(conn.Listeners("data"))
			}
		})
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		c, err := dialWS(ctx, g.url)
		if err != nil {
			t.Fatal(err)
		}
		defer c.close()
		// The library's listener was in place when the gate was installed.
		if got := <-listeners; got != 2 {
			t.Errorf("got %d data listeners, want 2: the gate's, then the library's", got)
		}
	})
}
