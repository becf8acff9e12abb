package server

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/zishang520/socket.io/v3/pkg/types"
)

// TestConnectGate checks one connection's gate: packets after a CONNECT to
// /ssh wait for release or close, however long that takes.
func TestConnectGate(t *testing.T) {
	packet := func(s string) []any { return []any{types.NewStringBufferString(s)} }
	// held starts hold on its own goroutine and reports whether it is still
	// waiting once every goroutine of the bubble is blocked.
	held := func(c *gatedConn, p string) (through chan struct{}) {
		through = make(chan struct{})
		go func() {
			c.hold(packet(p))
			close(through)
		}()
		return through
	}
	waiting := func(through chan struct{}) bool {
		synctest.Wait()
		select {
		case <-through:
			return false
		default:
			return true
		}
	}
	synctest.Test(t, func(t *testing.T) {
		c := &gatedConn{}
		// Packets of connections that have not connected to /ssh pass.
		for _, p := range []string{`2/ssh,["resize",{}]`, `0/other,`, `0/sshx`, `0/ssh,{"token":1}`} {
			if waiting(held(c, p)) {
				t.Fatalf("%s: got it held, want it through", p)
			}
		}
		// The CONNECT above gates the next packets, with no time limit.
		first := held(c, `2/ssh,["resize",{"cols":80,"rows":24}]`)
		second := held(c, `2/ssh,["start-session",{}]`)
		time.Sleep(time.Hour)
		if !waiting(first) || !waiting(second) {
			t.Fatal("got a packet after CONNECT through before release, want it held")
		}
		c.open()
		if waiting(first) || waiting(second) {
			t.Fatal("got a packet still held after release, want it through")
		}
		if waiting(held(c, `2/ssh,["ssh-input",{"input":"x"}]`)) {
			t.Fatal("got a packet held after release, want it through")
		}
		// A new CONNECT on the same connection (after a client-side
		// disconnect of the namespace) gates again, until close.
		if waiting(held(c, `0/ssh,`)) {
			t.Fatal("got the CONNECT held, want it through")
		}
		third := held(c, `2/ssh,["resize",{}]`)
		if !waiting(third) {
			t.Fatal("got a packet after a second CONNECT through, want it held")
		}
		c.close()
		if waiting(third) {
			t.Fatal("got a packet still held after close, want it through")
		}
		// After close, nothing is held, even after a CONNECT.
		if waiting(held(c, `0/ssh,`)) {
			t.Fatal("got the CONNECT held after close, want it through")
		}
		if waiting(held(c, `2/ssh,["resize",{}]`)) {
			t.Fatal("got a packet held after close, want it through")
		}
	})
}
