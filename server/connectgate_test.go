package server

import (
	"testing"
	"time"

	"github.com/zishang520/socket.io/v3/pkg/types"
)

func TestConnectGate(t *testing.T) {
	g := connectGate{pending: make(map[string]chan struct{})}
	packet := func(s string) []any { return []any{types.NewStringBufferString(s)} }
	g.pending["a"] = make(chan struct{}) // as install does

	// Packets that are not for /ssh, and the CONNECT itself, pass.
	g.hold("a", packet(`0/ssh,{"token":1}`))
	g.hold("a", packet(`2/other,["x"]`))
	g.hold("a", packet(`2["x"]`))
	g.hold("a", packet(`2/sshx,["x"]`))
	g.hold("b", packet(`2/ssh,["resize",{}]`)) // a connection the gate does not know

	held := make(chan struct{})
	go func() {
		g.hold("a", packet(`2/ssh,["resize",{"cols":80,"rows":24}]`))
		close(held)
	}()
	select {
	case <-held:
		t.Fatal("got a /ssh packet through before release, want it held")
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

func TestForNamespace(t *testing.T) {
	tests := []struct {
		packet string
		want   bool
	}{
		{`2/ssh,["ssh-input",{"input":"a"}]`, true},
		{`2/ssh,1["x"]`, true},
		{`1/ssh,`, true},
		{`51-/ssh,["x",{"_placeholder":true,"num":0}]`, true},
		{`0/ssh,`, false},
		{`0/ssh`, false},
		{`2["x"]`, false},
		{`2/sshd,["x"]`, false},
		{``, false},
		{`x/ssh,`, false},
	}
	for _, tt := range tests {
		if got := forNamespace([]byte(tt.packet)); got != tt.want {
			t.Errorf("%q: got %v, want %v", tt.packet, got, tt.want)
		}
	}
}
