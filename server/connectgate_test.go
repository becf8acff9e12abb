package server

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zishang520/socket.io/parsers/engine/v3/packet"
	"github.com/zishang520/socket.io/servers/engine/v3/transports"
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

// fakePolling is the part of a polling transport serialPolling uses: a
// long-poll is pending while writable, and a Send answers it.
type fakePolling struct {
	transports.Polling
	writable bool
	sent     []string
}

func (f *fakePolling) Writable() bool { return f.writable }

func (f *fakePolling) Send(packets []*packet.Packet) {
	if !f.writable {
		panic("polling write error") // what the library does, roughly
	}
	f.writable = false
	var names []string
	for _, p := range packets {
		names = append(names, string(p.Type))
	}
	f.sent = append(f.sent, strings.Join(names, "+"))
}

func (f *fakePolling) OnRequest(ctx *types.HttpContext) {
	if ctx.Method() == http.MethodGet {
		f.writable = true
	}
}

func TestSerialPolling(t *testing.T) {
	payload := func(ts ...packet.Type) []*packet.Packet {
		var ps []*packet.Packet
		for _, typ := range ts {
			ps = append(ps, &packet.Packet{Type: typ})
		}
		return ps
	}
	get := types.NewHttpContext(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/socket.io/", nil))
	post := types.NewHttpContext(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/socket.io/", nil))
	f := &fakePolling{}
	p := &serialPolling{Polling: f}
	check := func(what string, wantSent []string, wantWritable bool) {
		t.Helper()
		if !slices.Equal(f.sent, wantSent) || p.Writable() != wantWritable {
			t.Errorf("%s: got sent %q, writable %v; want %q, %v", what, f.sent, p.Writable(), wantSent, wantWritable)
		}
	}

	p.OnRequest(get)
	p.Send(payload(packet.MESSAGE))
	check("send on a pending long-poll", []string{"message"}, false)

	// The upgrade check's NOOP and a reply race for the next long-poll.
	p.OnRequest(get)
	p.Send(payload(packet.NOOP))
	p.Send(payload(packet.MESSAGE, packet.MESSAGE)) // found none: waits
	p.Send(payload(packet.NOOP))                    // found none: dropped
	check("sends with no long-poll", []string{"message", "noop"}, false)

	p.OnRequest(post)
	check("a POST", []string{"message", "noop"}, false)
	p.OnRequest(get)
	check("the next long-poll", []string{"message", "noop", "message+message"}, false)
	p.OnRequest(get)
	check("another long-poll", []string{"message", "noop", "message+message"}, true)

	// Payloads still waiting at the upgrade go to the new transport, in order.
	p.Send(payload(packet.MESSAGE))
	p.Send(payload(packet.PING))
	p.Send(payload(packet.MESSAGE))
	to := &fakePolling{writable: true}
	p.handOver(&alwaysWritable{to})
	// A flush that picked the old transport just before the upgrade: its
	// payload follows to the new one; a NOOP has nothing left to end.
	p.Send(payload(packet.MESSAGE))
	p.Send(payload(packet.NOOP))
	p.OnRequest(get)
	check("after the upgrade", []string{"message", "noop", "message+message", "message"}, true)
	if want := []string{"ping", "message", "message"}; !slices.Equal(to.sent, want) {
		t.Errorf("handed over: got %q, want %q", to.sent, want)
	}
}

// alwaysWritable queues like a websocket transport.
type alwaysWritable struct{ *fakePolling }

func (a *alwaysWritable) Send(packets []*packet.Packet) {
	a.writable = true
	a.fakePolling.Send(packets)
}
