package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/alfresco-ssh/alfresco-ssh/internal/waitfor"
)

// engineClient is a bare Engine.IO v4 client, enough to replay a page's
// timing packet by packet: send writes packets at once (one websocket frame
// each, or one polling POST), recv returns the next packets the server sent.
type engineClient interface {
	send(packets ...string) error
	recv() ([]string, error)
	close()
}

// wsEngine speaks Engine.IO over a websocket.
type wsEngine struct{ c *websocket.Conn }

func dialWS(ctx context.Context, base string) (engineClient, error) {
	url := "ws" + strings.TrimPrefix(base, "http") + "/socket.io/?EIO=4&transport=websocket"
	c, _, err := websocket.DefaultDialer.DialContext(ctx, url, nil)
	if err != nil {
		return nil, err
	}
	if deadline, ok := ctx.Deadline(); ok {
		c.SetReadDeadline(deadline)
	}
	e := &wsEngine{c}
	open, err := e.recv()
	if err != nil || len(open) != 1 || !strings.HasPrefix(open[0], "0{") {
		c.Close()
		return nil, fmt.Errorf("handshake: got %q, %v", open, err)
	}
	return e, nil
}

func (e *wsEngine) send(packets ...string) error {
	for _, p := range packets {
		if err := e.c.WriteMessage(websocket.TextMessage, []byte(p)); err != nil {
			return err
		}
	}
	return nil
}

func (e *wsEngine) recv() ([]string, error) {
	_, b, err := e.c.ReadMessage()
	if err != nil {
		return nil, err
	}
	return []string{string(b)}, nil
}

func (e *wsEngine) close() { e.c.Close() }

// pollingEngine speaks Engine.IO over HTTP long-polling.
type pollingEngine struct {
	ctx context.Context
	url string // with the sid
}

func dialPolling(ctx context.Context, base string) (engineClient, error) {
	e := &pollingEngine{ctx: ctx, url: base + "/socket.io/?EIO=4&transport=polling"}
	open, err := e.recv()
	if err != nil || len(open) != 1 || !strings.HasPrefix(open[0], "0{") {
		return nil, fmt.Errorf("handshake: got %q, %v", open, err)
	}
	var hs struct{ Sid string }
	if err := json.Unmarshal([]byte(open[0][1:]), &hs); err != nil || hs.Sid == "" {
		return nil, fmt.Errorf("handshake: got %q, %v", open[0], err)
	}
	e.url += "&sid=" + hs.Sid
	return e, nil
}

func (e *pollingEngine) send(packets ...string) error {
	req, err := http.NewRequestWithContext(e.ctx, http.MethodPost, e.url, strings.NewReader(strings.Join(packets, "\x1e")))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "text/plain;charset=UTF-8")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("POST: got %d %q", res.StatusCode, body)
	}
	return nil
}

func (e *pollingEngine) recv() ([]string, error) {
	req, err := http.NewRequestWithContext(e.ctx, http.MethodGet, e.url, nil)
	if err != nil {
		return nil, err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, err
	}
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET: got %d %q", res.StatusCode, body)
	}
	return strings.Split(string(body), "\x1e"), nil
}

func (e *pollingEngine) close() {
	if strings.Contains(e.url, "&sid=") {
		e.send("1") //nolint:errcheck // best effort
	}
}

// errEngineClosed is a connection the server closed before the session's
// end was told.
var errEngineClosed = errors.New("engine connection closed")

// pageLike opens /ssh the way our pages do and checks the whole answer to
// a start-session with unknown credentials: CONNECT reply, the red closing
// message, DISCONNECT. When eager, the events go out right behind the
// CONNECT (in the same polling POST); otherwise right after its reply, as
// socket.io-client sends what was emitted on "connect".
func pageLike(ctx context.Context, dial func(context.Context, string) (engineClient, error), base string, eager bool) error {
	c, err := dial(ctx, base)
	if err != nil {
		return err
	}
	defer c.close()
	events := []string{
		`42/ssh,["resize",{"cols":100,"rows":30}]`,
		`42/ssh,["start-session",{"credentials_uuid":"unknown"}]`,
	}
	if eager {
		err = c.send(append([]string{"40/ssh,"}, events...)...)
	} else {
		err = c.send("40/ssh,")
	}
	if err != nil {
		return fmt.Errorf("send: %w", err)
	}
	var connected, closing bool
	for {
		packets, err := c.recv()
		if err != nil {
			return fmt.Errorf("connected %v, closing %v: %w (%w)", connected, closing, errEngineClosed, err)
		}
		for _, p := range packets {
			switch {
			case p == "2":
				err = c.send("3")
			case p == "1":
				return fmt.Errorf("connected %v, closing %v: %w", connected, closing, errEngineClosed)
			case strings.HasPrefix(p, "40/ssh,{"):
				connected = true
				if !eager {
					err = c.send(events...)
				}
			case strings.HasPrefix(p, `42/ssh,["ssh-output"`) && strings.Contains(p, "credentials"):
				closing = true
			case p == "41/ssh," || p == "41/ssh":
				if !connected || !closing {
					return fmt.Errorf("got DISCONNECT with connected %v, closing %v", connected, closing)
				}
				return nil
			case p == "6":
			default:
				return fmt.Errorf("unexpected packet %q", p)
			}
			if err != nil {
				return fmt.Errorf("send: %w", err)
			}
		}
	}
}

// TestConnectRace opens many connections at once, each sending its events
// right after (or with) the namespace CONNECT, over both transports, and
// counts the ones that did not get the whole answer. It also checks that
// the server forgot every terminal and every gated connection.
func TestConnectRace(t *testing.T) {
	g := startGateway(t, Config{})
	const conns, rounds = 50, 2
	for _, tc := range []struct {
		name  string
		dial  func(context.Context, string) (engineClient, error)
		eager bool
	}{
		{"websocket/on-reply", dialWS, false},
		{"websocket/eager", dialWS, true},
		{"polling/on-reply", dialPolling, false},
		{"polling/eager", dialPolling, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var (
				mu     sync.Mutex
				failed []string
			)
			for range rounds {
				var wg sync.WaitGroup
				for range conns {
					wg.Go(func() {
						ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
						defer cancel()
						if err := pageLike(ctx, tc.dial, g.url, tc.eager); err != nil {
							mu.Lock()
							failed = append(failed, err.Error())
							mu.Unlock()
						}
					})
				}
				wg.Wait()
			}
			if len(failed) > 0 {
				t.Errorf("got %d of %d connections failed, want 0; first: %s", len(failed), conns*rounds, failed[0])
			}
		})
	}
	waitfor.Cond(t, "no terminal left", func() bool {
		return len(g.srv.terms.List()) == 0
	})
	waitfor.Cond(t, "no connection left in the gate", func() bool {
		left := 0
		g.srv.gate.conns.Range(func(any, any) bool { left++; return true })
		return left == 0
	})
}

// upgradeStorm holds a polling connection in the middle of an upgrade to
// websocket (probe answered, upgrade not yet sent) with a long-poll GET
// always pending, and POSTs CONNECTs to an unknown namespace, which the
// server answers at once: its replies race with the NOOPs it writes every
// 100 ms to end the long-poll for the upgrade. It returns nil if the
// connection survived n round trips, or as many as it could make in half
// the server's upgrade timeout (after which the server gives up on the
// upgrade), and then upgraded.
func upgradeStorm(ctx context.Context, base string, n int, upgradeTimeout time.Duration) error {
	c, err := dialPolling(ctx, base)
	if err != nil {
		return err
	}
	p := c.(*pollingEngine)
	ws, err := probeWebsocket(ctx, p)
	if err != nil {
		return err
	}
	defer ws.Close()
	finishBy := time.Now().Add(upgradeTimeout / 2)
	// One POST at a time: the pings' answers and the CONNECTs.
	var posting sync.Mutex
	post := func(packets ...string) error {
		posting.Lock()
		defer posting.Unlock()
		return p.send(packets...)
	}
	var sent atomic.Int32
	allSent := make(chan struct{})
	replies := make(chan error, 1)
	go func() {
		got := 0
		for {
			select {
			case <-allSent:
				if int32(got) >= sent.Load() {
					replies <- nil
					return
				}
			default:
			}
			packets, err := p.recv() // the upgrade's NOOPs end it at the latest
			if err != nil {
				replies <- fmt.Errorf("after %d replies: %w (%w)", got, errEngineClosed, err)
				return
			}
			for _, pk := range packets {
				switch {
				case strings.HasPrefix(pk, "44/nope,"):
					got++
				case pk == "2":
					if err := post("3"); err != nil {
						replies <- fmt.Errorf("after %d replies: pong: %w", got, err)
						return
					}
				case pk == "6":
				default:
					replies <- fmt.Errorf("after %d replies: got %q: %w", got, pk, errEngineClosed)
					return
				}
			}
		}
	}()
	for range n {
		if time.Now().After(finishBy) || post("40/nope,") != nil {
			break // the reader reports an error
		}
		sent.Add(1)
	}
	close(allSent)
	if err := <-replies; err != nil {
		return err
	}
	// Upgrade; the connection must still answer, now on the websocket.
	for _, m := range []string{"5", "40/nope,"} {
		if err := ws.WriteMessage(websocket.TextMessage, []byte(m)); err != nil {
			return fmt.Errorf("after the upgrade: %w", err)
		}
	}
	for {
		_, b, err := ws.ReadMessage()
		if err != nil {
			return fmt.Errorf("after the upgrade: %w (%w)", errEngineClosed, err)
		}
		switch string(b) {
		case "6":
		case "2":
			if err := ws.WriteMessage(websocket.TextMessage, []byte("3")); err != nil {
				return fmt.Errorf("after the upgrade: pong: %w", err)
			}
		default:
			if strings.HasPrefix(string(b), "44/nope,") {
				return nil
			}
			return fmt.Errorf("after the upgrade: got %q", b)
		}
	}
}

// probeWebsocket opens the websocket that upgrades p and probes it, as a
// client does before it stops polling.
func probeWebsocket(ctx context.Context, p *pollingEngine) (*websocket.Conn, error) {
	wsURL := "ws" + strings.TrimPrefix(strings.Replace(p.url, "transport=polling", "transport=websocket", 1), "http")
	ws, _, err := websocket.DefaultDialer.DialContext(ctx, wsURL, nil)
	if err != nil {
		return nil, err
	}
	if deadline, ok := ctx.Deadline(); ok {
		ws.SetReadDeadline(deadline)
	}
	if err := ws.WriteMessage(websocket.TextMessage, []byte("2probe")); err != nil {
		ws.Close()
		return nil, err
	}
	if _, b, err := ws.ReadMessage(); err != nil || string(b) != "3probe" {
		ws.Close()
		return nil, fmt.Errorf("probe: got %q, %v", b, err)
	}
	return ws, nil
}

// TestUpgradeRace counts the polling connections the server drops while
// they upgrade to websocket (see serialPolling). Before serialPolling,
// about 1 connection in 20 failed here.
func TestUpgradeRace(t *testing.T) {
	g := startGateway(t, Config{})
	timeout := g.srv.io.Engine().Opts().UpgradeTimeout()
	runConns(t, 40, func(ctx context.Context) error { return upgradeStorm(ctx, g.url, 60, timeout) })
}

// runConns runs conns connections at once, each with 30 s to finish, and
// fails the test if any returns an error.
func runConns(t *testing.T, conns int, run func(context.Context) error) {
	t.Helper()
	var (
		mu     sync.Mutex
		failed []string
		wg     sync.WaitGroup
	)
	for range conns {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			if err := run(ctx); err != nil {
				mu.Lock()
				failed = append(failed, err.Error())
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(failed) > 0 {
		t.Errorf("got %d of %d connections failed, want 0; first: %s", len(failed), conns, failed[0])
	}
}
