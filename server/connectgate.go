package server

import (
	"bytes"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zishang520/socket.io/servers/engine/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"

	"github.com/alfresco-ssh/alfresco-ssh/terminal"
)

// connectGate works around a race in the Socket.IO server library: it sends
// a namespace's CONNECT reply before it records the socket for the
// connection, so a packet the client sends at once (pages send resize and
// start-session on connect) can arrive in between; the library then closes
// the connection, and the socket it created is never told. Under load this
// hit a few clients in a hundred. (socket v3.0.6: Client.ondecoded, and
// Client.doConnect's callback, which records the socket.)
//
// The gate sees each connection's packets before the library does. After a
// CONNECT to our namespace it holds the connection's next packets until the
// socket is attached (release) or the connection closes, which it always
// does in the end: a held connection reads nothing, so it answers no ping
// and the engine closes it after the ping timeout. There is no other
// timeout: letting a held packet through early is the failure itself.
// Whoever handles a CONNECT to the namespace must release the gate, on
// success (attach) and on a refusal alike.
//
// Each connection has a gate of its own, so packets of different
// connections never wait on one lock; the gates are found by connection id
// only to release them.
type connectGate struct {
	conns sync.Map // engine connection id → *gatedConn, while it is open
}

// gatedConn is the gate of one engine connection.
type gatedConn struct {
	mu     sync.Mutex
	held   chan struct{} // while packets are held: closed to let them through
	closed bool
	// input, once the socket is attached, is its terminal: while its
	// input buffer is full, the connection's packets wait (WaitInput)
	// for up to stall.
	input atomic.Pointer[terminal.Terminal]
	stall time.Duration
}

var connectPacket = []byte("0" + namespace)

// install puts the gate in front of the library's listener on conn.
func (g *connectGate) install(conn engine.Socket) {
	id := conn.Id()
	c := &gatedConn{}
	g.conns.Store(id, c)
	theirs := conn.Listeners("data")
	conn.RemoveAllListeners("data")
	conn.On("data", func(args ...any) { c.hold(args) })
	conn.On("data", theirs...)
	closed := func(...any) {
		g.conns.Delete(id)
		c.close()
	}
	conn.Once("close", closed)
	if conn.ReadyState() == "closed" {
		closed() // before the listener was in place
	}
}

// release lets the packets of connection id through: its socket is
// attached, or its CONNECT refused.
func (g *connectGate) release(id string) {
	if c, ok := g.conns.Load(id); ok {
		c.(*gatedConn).open()
	}
}

// pauseInput makes connection id read nothing more while t's input buffer
// is full, for up to stall each time: the client is held back by TCP flow
// control (websocket) or an unanswered POST (polling) instead of the
// Socket.IO library queueing what it sends. stall must stay well below
// the ping timeout, as the client's pongs wait too.
func (g *connectGate) pauseInput(id string, t *terminal.Terminal, stall time.Duration) {
	if c, ok := g.conns.Load(id); ok {
		gc := c.(*gatedConn)
		gc.stall = stall
		gc.input.Store(t)
	}
}

// hold returns at once, except for a packet that follows a CONNECT to our
// namespace: that one waits until the gate opens.
func (c *gatedConn) hold(args []any) {
	var data []byte
	if len(args) > 0 {
		if buf, ok := args[0].(types.BufferInterface); ok {
			data = buf.Bytes()
		}
	}
	c.mu.Lock()
	wait := c.held
	if wait == nil && !c.closed && isConnect(data) {
		c.held = make(chan struct{})
	}
	c.mu.Unlock()
	if wait != nil {
		<-wait
	}
	if t := c.input.Load(); t != nil {
		t.WaitInput(c.stall)
	}
}

// open lets held packets through.
func (c *gatedConn) open() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.held != nil {
		close(c.held)
		c.held = nil
	}
}

// close lets held packets through and holds none from now on.
func (c *gatedConn) close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.open()
}

// isConnect reports whether a Socket.IO packet is a CONNECT to our namespace
// ("0/ssh" or "0/ssh,{auth}").
func isConnect(p []byte) bool {
	rest, ok := bytes.CutPrefix(p, connectPacket)
	return ok && (len(rest) == 0 || rest[0] == ',')
}
