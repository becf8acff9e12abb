package server

import (
	"bytes"
	"sync"
	"time"

	"github.com/zishang520/socket.io/servers/engine/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// connectGate works around a race in the Socket.IO server library: it sends
// a namespace's CONNECT reply before it records the socket for the
// connection, so a packet the client sends at once (pages send resize and
// start-session on connect) can arrive in between; the library then closes
// the connection, and the socket it created is never told. Under load this
// hit a few clients in a hundred.
//
// The gate sees each connection's packets before the library does. After a
// CONNECT to our namespace it holds the connection's next packets until the
// socket is attached (release), or the connection closes, or gateTimeout
// passes.
type connectGate struct {
	mu      sync.Mutex
	pending map[string]chan struct{} // engine connection id → closed on release
}

const gateTimeout = 3 * time.Second

var connectPacket = []byte("0" + namespace)

// install puts the gate in front of the library's listener on conn.
func (g *connectGate) install(conn engine.Socket) {
	id := conn.Id()
	theirs := conn.Listeners("data")
	conn.RemoveAllListeners("data")
	conn.On("data", func(args ...any) { g.hold(id, args) })
	conn.On("data", theirs...)
	conn.Once("close", func(...any) { g.release(id) })
}

func (g *connectGate) hold(id string, args []any) {
	var data []byte
	if len(args) > 0 {
		if buf, ok := args[0].(types.BufferInterface); ok {
			data = buf.Bytes()
		}
	}
	g.mu.Lock()
	wait := g.pending[id]
	if isConnect(data) && wait == nil {
		g.pending[id] = make(chan struct{})
	}
	g.mu.Unlock()
	if wait == nil {
		return
	}
	timer := time.NewTimer(gateTimeout)
	defer timer.Stop()
	select {
	case <-wait:
	case <-timer.C:
	}
}

// release lets the connection's packets through.
func (g *connectGate) release(id string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if wait, ok := g.pending[id]; ok {
		close(wait)
		delete(g.pending, id)
	}
}

// isConnect reports whether a Socket.IO packet is a CONNECT to our namespace
// ("0/ssh" or "0/ssh,{auth}").
func isConnect(p []byte) bool {
	rest, ok := bytes.CutPrefix(p, connectPacket)
	return ok && (len(rest) == 0 || rest[0] == ',')
}
