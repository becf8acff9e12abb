package server

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/zishang520/socket.io/parsers/engine/v3/packet"
	"github.com/zishang520/socket.io/servers/engine/v3"
	"github.com/zishang520/socket.io/servers/engine/v3/transports"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// pollHarness drives a serialPolling around the library's real polling
// transport with HTTP requests, as the engine does, and fails the test on
// any transport error ("polling write error" is the race it prevents).
type pollHarness struct {
	t *testing.T
	p *serialPolling
}

func newPollHarness(t *testing.T) *pollHarness {
	t.Helper()
	ctx := types.NewHttpContext(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/socket.io/?EIO=4&transport=polling", nil))
	p, ok := (&serialPollingBuilder{}).New(ctx).(*serialPolling)
	if !ok {
		t.Fatal("the builder made no serialPolling")
	}
	p.SetMaxHttpBufferSize(1 << 20) // as the engine does
	p.On("error", func(args ...any) { t.Errorf("transport error: %v", args) })
	t.Cleanup(func() { p.Discard(); p.Close() })
	return &pollHarness{t: t, p: p}
}

// longPoll is a GET the transport holds until it has something to say.
type longPoll struct {
	ctx *types.HttpContext
	w   *httptest.ResponseRecorder
}

func (h *pollHarness) get() *longPoll {
	w := httptest.NewRecorder()
	ctx := types.NewHttpContext(w, httptest.NewRequest(http.MethodGet, "/socket.io/?EIO=4&transport=polling", nil))
	h.p.OnRequest(ctx)
	return &longPoll{ctx, w}
}

// post sends a payload from the client.
func (h *pollHarness) post(payload string) {
	ctx := types.NewHttpContext(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/socket.io/?EIO=4&transport=polling", strings.NewReader(payload)))
	h.p.OnRequest(ctx)
}

// answer waits for the long-poll's answer: its packets, as Engine.IO
// encodes them ("4a" is the message a, "6" a NOOP, "1" a CLOSE).
func (l *longPoll) answer(t *testing.T) []string {
	t.Helper()
	select {
	case <-l.ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("got no answer to a long-poll")
	}
	return strings.Split(l.w.Body.String(), "\x1e")
}

// pending reports whether the long-poll is still unanswered.
func (l *longPoll) pending() bool {
	select {
	case <-l.ctx.Done():
		return false
	default:
		return true
	}
}

func message(s string) []*packet.Packet {
	return []*packet.Packet{{Type: packet.MESSAGE, Data: strings.NewReader(s)}}
}

var noop = []*packet.Packet{{Type: packet.NOOP}}

func wantPackets(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s: got %q, want %q", what, got, want)
	}
}

func TestSerialPolling(t *testing.T) {
	t.Run("a NOOP and a payload race for one long-poll", func(t *testing.T) {
		h := newPollHarness(t)
		first := h.get()
		h.p.Send(noop) // the upgrade check
		h.p.Send(message("a"))
		wantPackets(t, "first long-poll", first.answer(t), "6")
		if h.p.Writable() {
			t.Error("got writable with a payload waiting, want not")
		}
		wantPackets(t, "second long-poll", h.get().answer(t), "4a")
	})

	t.Run("a NOOP without a long-poll is dropped", func(t *testing.T) {
		h := newPollHarness(t)
		h.p.Send(noop)
		next := h.get()
		if !next.pending() {
			t.Fatalf("got the next long-poll answered with %q, want it pending", next.answer(t))
		}
		h.p.Send(message("b"))
		wantPackets(t, "next long-poll", next.answer(t), "4b")
	})

	t.Run("waiting payloads go out in order, one per long-poll", func(t *testing.T) {
		h := newPollHarness(t)
		h.p.Send(message("a"))
		h.p.Send(message("b"))
		if h.p.Writable() {
			t.Error("got writable with payloads waiting, want not")
		}
		wantPackets(t, "first long-poll", h.get().answer(t), "4a")
		wantPackets(t, "second long-poll", h.get().answer(t), "4b")
		third := h.get()
		if !h.p.Writable() || !third.pending() {
			t.Error("got a third long-poll answered or not writable, want it pending and writable")
		}
	})

	t.Run("a close delivers what waits, then the CLOSE", func(t *testing.T) {
		h := newPollHarness(t)
		h.p.Send(message("closing text"))
		h.p.Send(message("disconnect"))
		h.p.Close()
		wantPackets(t, "long-poll after the close", h.get().answer(t), "4closing text", "4disconnect", "1")
		if got := h.p.ReadyState(); got != "closed" {
			t.Errorf("got ready state %q, want closed", got)
		}
	})

	t.Run("a close with a long-poll pending", func(t *testing.T) {
		h := newPollHarness(t)
		poll := h.get()
		h.p.Close()
		wantPackets(t, "long-poll", poll.answer(t), "1")
		h.p.Send(message("late"))
		h.p.Send(noop)
	})

	t.Run("the client's CLOSE ends serialPolling's writes", func(t *testing.T) {
		h := newPollHarness(t)
		poll := h.get()
		h.post("1")
		wantPackets(t, "pending long-poll", poll.answer(t), "6")
		h.p.mu.Lock()
		closing := h.p.closing
		h.p.mu.Unlock()
		if !closing {
			t.Fatal("the transport decoded the POST without serialPolling.OnData: the Socket.IO library changed")
		}
		h.p.Send(message("late")) // must not write: no "polling write error"
		h.p.Send(noop)
		if h.p.Writable() {
			t.Error("got writable after the client's CLOSE, want not")
		}
	})

	t.Run("the client's packets still arrive", func(t *testing.T) {
		h := newPollHarness(t)
		var got []string
		h.p.On("packet", func(args ...any) {
			if pk, ok := args[0].(*packet.Packet); ok {
				got = append(got, string(pk.Type))
			}
		})
		h.post("4a\x1e3\x1e4b")
		wantPackets(t, "packets", got, "message", "pong", "message")
	})

	t.Run("an upgrade hands the waiting payloads over, in order", func(t *testing.T) {
		h := newPollHarness(t)
		h.p.Send(message("a"))
		h.p.Send(message("b"))
		ws := &recordingTransport{}
		held := &heldWebsocket{Transport: ws}
		held.held.Store(true)
		if held.Writable() {
			t.Error("got the upgrade's websocket writable before the upgrade, want not")
		}
		h.p.Discard()
		h.p.Close() // what the connection does to the old transport
		h.p.handOver(held)
		held.held.Store(false)
		// A flush that picked the polling transport just before.
		h.p.Send(message("c"))
		h.p.Send(noop)
		wantPackets(t, "on the websocket", ws.sent, "a", "b", "c")
		if !held.Writable() {
			t.Error("got the websocket not writable after the upgrade, want writable")
		}
	})
}

// recordingTransport is a websocket that records the messages sent.
type recordingTransport struct {
	transports.Transport
	sent []string
}

func (r *recordingTransport) Writable() bool { return true }

func (r *recordingTransport) Send(packets []*packet.Packet) {
	for _, pk := range packets {
		if pk.Type != packet.MESSAGE {
			r.sent = append(r.sent, string(pk.Type))
			continue
		}
		b, _ := io.ReadAll(pk.Data)
		r.sent = append(r.sent, string(b))
	}
}

// TestUpgradeOrder upgrades polling connections to websocket while the
// server answers a steady stream of packets, and checks that each
// connection gets every answer exactly once and in order across the
// upgrade. It also checks the library's upgrade steps that serialPolling
// and heldWebsocket rely on.
func TestUpgradeOrder(t *testing.T) {
	g := startGateway(t, Config{})
	var steps sync.Map // violated assumption → true
	g.srv.io.Engine().On("connection", func(args ...any) {
		conn, ok := args[0].(engine.Socket)
		if !ok {
			return
		}
		from := conn.Transport()
		conn.Once("upgrade", func(args ...any) {
			if conn.Transport() != args[0] {
				steps.Store("the connection makes the new transport its own before the upgrade event", true)
			}
			if !from.Discarded() {
				steps.Store("the connection discards the old transport before the upgrade event", true)
			}
		})
	})
	runConns(t, 20, func(ctx context.Context) error { return upgradeInOrder(ctx, g.url, 120) })
	steps.Range(func(step, _ any) bool {
		t.Errorf("the Socket.IO library changed: it is no longer true that %s; see serialPolling", step)
		return true
	})
}

// upgradeInOrder sends n numbered CONNECTs to namespaces that do not exist
// ("40/n0,", "40/n1,", ...), whose refusals ("44/n0,...") the server sends
// in order, and upgrades to websocket as engine.io-client does once a
// quarter of them have come back: probe, stop polling, upgrade, go on on
// the websocket. It returns nil if every refusal came once, in order.
func upgradeInOrder(ctx context.Context, base string, n int) error {
	c, err := dialPolling(ctx, base)
	if err != nil {
		return err
	}
	p := c.(*pollingEngine)
	var (
		sending  sync.Mutex // one writer: polling, then the websocket
		ws       *websocket.Conn
		upgraded bool
	)
	send := func(pk string) error {
		sending.Lock()
		defer sending.Unlock()
		if upgraded {
			return ws.WriteMessage(websocket.TextMessage, []byte(pk))
		}
		return p.send(pk)
	}
	var got []int // refusals, in order of arrival (on the readers, one after the other)
	quarter := make(chan struct{})
	record := func(pk string) error {
		switch {
		case pk == "6":
		case pk == "2":
			return send("3")
		case strings.HasPrefix(pk, "44/n"):
			i, err := strconv.Atoi(pk[len("44/n"):strings.IndexByte(pk, ',')])
			if err != nil {
				return fmt.Errorf("got %q", pk)
			}
			if got = append(got, i); len(got) == n/4 {
				close(quarter)
			}
		default:
			return fmt.Errorf("got %q", pk)
		}
		return nil
	}
	sent := make(chan error, 1)
	go func() {
		for i := range n {
			if err := send(fmt.Sprintf("40/n%d,", i)); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()
	pause := make(chan struct{})
	polled := make(chan error, 1)
	go func() {
		for {
			select {
			case <-pause:
				polled <- nil
				return
			default:
			}
			packets, err := p.recv()
			if err != nil {
				polled <- fmt.Errorf("polling: %w", err)
				return
			}
			for _, pk := range packets {
				if err := record(pk); err != nil {
					polled <- fmt.Errorf("polling: %w", err)
					return
				}
			}
		}
	}()
	select {
	case <-quarter:
	case err := <-polled:
		return fmt.Errorf("before the upgrade: %v", err)
	case <-ctx.Done():
		return fmt.Errorf("before the upgrade: %w", ctx.Err())
	}
	probed, err := probeWebsocket(ctx, p)
	if err != nil {
		return err
	}
	defer probed.Close()
	sending.Lock()
	ws = probed
	sending.Unlock()
	// Pause: the last long-poll ends with what the server has, or with
	// the NOOP of its upgrade check.
	close(pause)
	if err := <-polled; err != nil {
		return err
	}
	sending.Lock()
	err = ws.WriteMessage(websocket.TextMessage, []byte("5"))
	upgraded = true
	sending.Unlock()
	if err != nil {
		return err
	}
	for len(got) < n {
		_, b, err := ws.ReadMessage()
		if err != nil {
			return fmt.Errorf("after the upgrade, after %d refusals: %w", len(got), err)
		}
		if err := record(string(b)); err != nil {
			return fmt.Errorf("after the upgrade: %w", err)
		}
	}
	if err := <-sent; err != nil {
		return err
	}
	for i, v := range got {
		if v != i {
			return fmt.Errorf("refusal %d is of CONNECT %d (%v), want them in order", i, v, got)
		}
	}
	return nil
}
