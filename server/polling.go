package server

import (
	"net/http"
	"sync"

	"github.com/zishang520/socket.io/parsers/engine/v3/packet"
	"github.com/zishang520/socket.io/servers/engine/v3"
	"github.com/zishang520/socket.io/servers/engine/v3/transports"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// serialPolling works around a race in the Engine.IO server library during
// an upgrade from long-polling to websocket. While the client upgrades, the
// library writes a NOOP on the pending long-poll every 100 ms so the
// client can finish it; that check runs on a goroutine of its own per tick
// and tests Writable() without the lock its normal writes (flush) hold. A
// reply flushed at the same moment, or an overlapping tick, then finds the
// long-poll already answered: "polling write error", and the library
// closes the whole connection. The client, half-way through its upgrade,
// is not told and waits for its ping timeout. (engine v3.0.6: socket.go
// MaybeUpgrade's check, lines 401-405, run by utils.SetInterval's "go fn()"
// per tick; flush, 567-586; transports/polling.go write, 349-357.)
//
// serialPolling serializes every Send on the transport. A payload that
// finds no pending long-poll waits for the next one (or for the upgrade,
// see handOver; after it, payloads go to the new transport); a NOOP that finds none is dropped, since its only purpose
// is to end a pending long-poll. While payloads wait, Writable reports
// false, so the library's own flushes wait behind them, in order.
type serialPolling struct {
	transports.Polling

	mu      sync.Mutex
	waiting [][]*packet.Packet   // oldest first
	to      transports.Transport // the upgraded transport, once handed over
}

// serialPollingBuilder makes the polling transports of the engine.
type serialPollingBuilder struct{ transports.PollingBuilder }

func (b *serialPollingBuilder) New(ctx *types.HttpContext) transports.Transport {
	t := b.PollingBuilder.New(ctx)
	if p, ok := t.(transports.Polling); ok {
		return &serialPolling{Polling: p}
	}
	return t
}

func (p *serialPolling) Writable() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.waiting) == 0 && p.Polling.Writable()
}

func (p *serialPolling) Send(packets []*packet.Packet) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.to != nil:
		// A flush that picked this transport just before the upgrade.
		if !onlyNoop(packets) {
			p.to.Send(packets)
		}
	case len(p.waiting) == 0 && p.Polling.Writable():
		p.Polling.Send(packets)
	case !onlyNoop(packets):
		p.waiting = append(p.waiting, packets)
	}
}

// OnRequest hands a new long-poll the oldest waiting payload.
func (p *serialPolling) OnRequest(ctx *types.HttpContext) {
	p.Polling.OnRequest(ctx)
	if ctx.Method() != http.MethodGet {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.waiting) > 0 && p.to == nil && p.Polling.Writable() {
		next := p.waiting[0]
		p.waiting[0] = nil
		p.waiting = p.waiting[1:]
		p.Polling.Send(next)
	}
}

// watchUpgrade makes conn hand its polling transport's waiting payloads
// over when it upgrades.
func watchUpgrade(conn engine.Socket) {
	p, ok := conn.Transport().(*serialPolling)
	if !ok {
		return
	}
	conn.Once("upgrade", func(args ...any) {
		if to, ok := args[0].(transports.Transport); ok {
			p.handOver(to)
		}
	})
}

// handOver sends the waiting payloads on the transport the connection
// upgraded to. The connection's "upgrade" event calls it, before the
// library flushes its own buffer there.
func (p *serialPolling) handOver(to transports.Transport) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.to = to
	for _, packets := range p.waiting {
		to.Send(packets)
	}
	p.waiting = nil
}

func onlyNoop(packets []*packet.Packet) bool {
	for _, pk := range packets {
		if pk.Type != packet.NOOP {
			return false
		}
	}
	return true
}
