package server

import (
	"testing"
	"time"

	"github.com/zishang520/socket.io/v3/pkg/types"
)

func TestConnectGate(t *testing.T) {
	g := connectGate{pending: make(map[string]chan struct{})}
	packet := func(s string) []any { return []any{types.NewStringBufferString(s)} }

	// Packets of connections that have not connected to /ssh pass.
	g.hold("a", packet(`2/ssh,["resize",{}]`))
	g.hold("a", packet(`0/other,`))
	g.hold("a", packet(`0/sshx`))

	g.hold("a", packet(`0/ssh,{"token":1}`)) // the CONNECT itself passes
	held := make(chan struct{})
	go func() {
		g.hold("a", packet(`2/ssh,["resize",{"cols":80,"rows":24}]`))
		close(held)
	}()
	select {
	case <-held:
		t.Fatal("got the packet after CONNECT through before release, want it held")
	case <-time.After(50 * time.Millisecond):
	}
	g.release("a")
	select {
	case <-held:
	case <-time.After(gateTimeout / 2):
		t.Fatal("got the packet still held after release, want it through")
	}
	g.hold("a", packet(`2/ssh,["ssh-input",{"input":"x"}]`)) // passes at once
	if len(g.pending) != 0 {
		t.Errorf("got %d pending connections, want 0", len(g.pending))
	}
}
