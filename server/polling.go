package server

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zishang520/socket.io/parsers/engine/v3/packet"
	"github.com/zishang520/socket.io/servers/engine/v3"
	"github.com/zishang520/socket.io/servers/engine/v3/transports"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// serialPolling works around races in the Engine.IO server library's
// long-polling transport (engine v3.0.6; TestSocketIOInternals,
// TestSerialPolling and TestUpgradeOrder fail if what this relies on
// changes). The library answers a pending long-poll from several
// goroutines without one lock: its socket's flush; the NOOP that its
// upgrade check writes every 100 ms, on a goroutine of its own per tick
// (socket.go MaybeUpgrade's check), so that an upgrading client can finish
// its poll; and the transport's own close-time writes (polling.go OnClose,
// DoClose, onPollRequest's pending close). When two find the same
// long-poll, the second fails with "polling write error" and the library
// closes the whole connection; the client, half-way through an upgrade, is
// not told and waits for its ping timeout.
//
// serialPolling makes itself the only writer of the transport:
//   - Every Send takes its lock. A payload that finds no pending long-poll
//     waits for the next one (or for the upgrade); while payloads wait,
//     Writable reports false, so the library's own flushes wait behind
//     them, in order. A NOOP that finds no pending long-poll, or payloads
//     waiting, is dropped: its only purpose is to end a pending long-poll.
//   - The transport calls DoClose and OnData through its prototype, which
//     is serialPolling, so its close-time writes happen only from DoClose
//     and from OnData's handling of a client's CLOSE, which stop
//     serialPolling's own writes first; DoClose puts the payloads still
//     waiting ahead of the CLOSE.
//
// And it keeps the connection's packets in order across an upgrade to
// websocket: the payloads still waiting go to the new transport before
// anything newer (see heldWebsocket), and a write in progress on the
// long-poll finishes, with its "drain", before the connection stops
// listening to this transport (Discard), so that the send callbacks of
// the connection's packets still fire once each, when they are written.
// (One exception: the upgrade check's NOOP drains too, and the connection
// takes that drain for its oldest send in flight.)
//
// JSONP long-polling (?j=) is left as the library makes it: no Socket.IO
// 3+ client uses it.
type serialPolling struct {
	transports.Polling

	mu        sync.Mutex
	changed   *sync.Cond           // on mu: a write ended, or the transport broke
	waiting   [][]*packet.Packet   // payloads for the next long-poll, oldest first
	writing   int                  // payloads written whose drain has not come
	broken    bool                 // the transport failed or closed: no drain comes
	upgrading bool                 // the client has probed a websocket
	closing   bool                 // closing: serialPolling writes no more
	last      []*packet.Packet     // what was waiting when closing, for the CLOSE
	to        transports.Transport // the transport upgraded to, once handed over
}

// serialPollingBuilder makes the polling transports of the engine.
type serialPollingBuilder struct{ transports.PollingBuilder }

func (b *serialPollingBuilder) New(ctx *types.HttpContext) transports.Transport {
	t := b.PollingBuilder.New(ctx)
	inner, ok := t.(transports.Polling)
	if !ok || ctx.Query().Has("j") {
		return t
	}
	p := &serialPolling{Polling: inner}
	p.changed = sync.NewCond(&p.mu)
	inner.Prototype(p)
	// Before the connection's own listeners: onReady hands out payloads
	// older than the connection's buffer, which its listener flushes; a
	// drain counted here before the connection sees it still reaches it,
	// as an event goes to the listeners registered when it is emitted.
	inner.On("ready", p.onReady)
	inner.On("drain", func(...any) {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.writing = max(p.writing-1, 0) // close-time NOOPs drain too
		p.changed.Broadcast()
	})
	broke := func(...any) {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.broken = true
		p.changed.Broadcast()
	}
	inner.On("error", broke)
	inner.On("close", broke)
	return p
}

func (p *serialPolling) Writable() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.waiting) == 0 && !p.closing && p.to == nil && p.Polling.Writable()
}

func (p *serialPolling) Send(packets []*packet.Packet) {
	p.mu.Lock()
	defer p.mu.Unlock()
	noop := onlyNoop(packets)
	switch {
	case p.to != nil:
		// A flush that picked this transport just before the upgrade.
		if !noop {
			p.to.Send(packets)
		}
	case noop:
		if len(p.waiting) == 0 && !p.closing && p.Polling.Writable() {
			p.write(packets)
		}
	case len(p.waiting) == 0 && !p.closing && p.Polling.Writable():
		p.write(packets)
	default:
		p.waiting = append(p.waiting, packets)
	}
}

// write answers the pending long-poll. p.mu must be held.
func (p *serialPolling) write(packets []*packet.Packet) {
	p.writing++
	p.Polling.Send(packets)
}

// onReady hands a new long-poll the oldest waiting payload, or, once
// closing, all of them, which the transport's pending close follows.
func (p *serialPolling) onReady(...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.to != nil || !p.Polling.Writable() {
		return
	}
	switch {
	case p.last != nil:
		p.write(p.last)
		p.last = nil
	case len(p.waiting) > 0 && !p.closing:
		next := p.waiting[0]
		p.waiting[0] = nil
		p.waiting = p.waiting[1:]
		p.write(next)
	}
}

// DoClose closes the transport (the library calls it through the
// prototype): the payloads still waiting go out first, in one long-poll,
// the CLOSE after them. On an upgrade, they wait for handOver instead.
func (p *serialPolling) DoClose(fn types.Callable) {
	p.mu.Lock()
	p.closing = true
	if len(p.waiting) > 0 && p.to == nil && !p.Polling.Discarded() {
		p.last = slices.Concat(p.waiting...)
		p.waiting = nil
		if p.Polling.Writable() {
			p.write(p.last)
			p.last = nil
		}
	}
	p.mu.Unlock()
	// A pending long-poll gets the CLOSE now; else the next one gets what
	// is left waiting (onReady), and the library adds the CLOSE to it.
	p.Polling.DoClose(fn)
}

// OnData decodes a POST's payload as the library does, but a CLOSE from the
// client stops serialPolling's writes before the transport ends a pending
// long-poll with a NOOP.
func (p *serialPolling) OnData(data types.BufferInterface) {
	packets, _ := p.Parser().DecodePayload(data)
	for _, pk := range packets {
		if pk.Type == packet.CLOSE {
			p.mu.Lock()
			p.closing = true
			p.mu.Unlock()
			p.Polling.OnClose()
			return
		}
		p.OnPacket(pk)
	}
}

// discardWait bounds how long Discard waits for a write in progress. A
// client upgrades after it has read the last long-poll, so the write ends
// at once; only a client that does not read can make it wait that long.
const discardWait = time.Second

// Discard is the connection's first step in an upgrade, before it stops
// listening to this transport: a write in progress finishes first, so that
// the connection sees its drain (up to discardWait).
func (p *serialPolling) Discard() {
	p.mu.Lock()
	if p.upgrading && p.writing > 0 {
		expired := false
		timer := time.AfterFunc(discardWait, func() {
			p.mu.Lock()
			defer p.mu.Unlock()
			expired = true
			p.changed.Broadcast()
		})
		for p.writing > 0 && !p.broken && !expired {
			p.changed.Wait()
		}
		timer.Stop()
	}
	p.mu.Unlock()
	p.Polling.Discard()
}

// handOver sends the waiting payloads on the transport the connection
// upgraded to, which listens to it by now; newer packets reach it only
// after them (heldWebsocket).
func (p *serialPolling) handOver(to transports.Transport) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.to = to
	for _, packets := range p.waiting {
		to.Send(packets)
	}
	p.waiting = nil
}

// heldWebsocket is the websocket transport of an upgrade (a websocket
// request for an existing session). Between the moment the connection
// makes it its transport and the "upgrade" event, the connection could
// flush newer packets to it ahead of those still waiting on the long-poll,
// so it reports itself not writable until the upgrade is complete
// (watchUpgrade).
type heldWebsocket struct {
	transports.Transport
	held atomic.Bool
}

// heldWebsocketBuilder makes the websocket transports of the engine.
type heldWebsocketBuilder struct{ transports.WebSocketBuilder }

func (b *heldWebsocketBuilder) New(ctx *types.HttpContext) transports.Transport {
	t := b.WebSocketBuilder.New(ctx)
	if !ctx.Query().Has("sid") {
		return t // a new connection, no upgrade
	}
	w := &heldWebsocket{Transport: t}
	w.held.Store(true)
	return w
}

func (w *heldWebsocket) Writable() bool { return !w.held.Load() && w.Transport.Writable() }

// watchUpgrade makes conn's polling transport hand its waiting payloads
// over to the transport conn upgrades to, before conn flushes its own
// buffer there.
func watchUpgrade(conn engine.Socket) {
	from, _ := conn.Transport().(*serialPolling)
	if from != nil {
		conn.Once("upgrading", func(...any) {
			from.mu.Lock()
			defer from.mu.Unlock()
			from.upgrading = true
		})
	}
	conn.Once("upgrade", func(args ...any) {
		to, _ := args[0].(transports.Transport)
		if from != nil && to != nil {
			from.handOver(to)
		}
		if w, ok := to.(*heldWebsocket); ok {
			w.held.Store(false)
		}
	})
}

func onlyNoop(packets []*packet.Packet) bool {
	for _, pk := range packets {
		if pk.Type != packet.NOOP {
			return false
		}
	}
	return true
}
