package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/alfresco-ssh/alfresco-ssh/internal/syncbuf"
	"github.com/alfresco-ssh/alfresco-ssh/internal/waitfor"
	"github.com/alfresco-ssh/alfresco-ssh/server"
	"github.com/alfresco-ssh/alfresco-ssh/sshbridge"
)

// TestStopDuringDrain: a second SIGTERM or SIGINT during a drain stops at
// once; the drain is over before serveUntilStopped returns, and it claims
// neither that the terminals ended by themselves nor that its timeout
// passed.
func TestStopDuringDrain(t *testing.T) {
	for _, tc := range []struct {
		name string
		stop func(cancel context.CancelFunc, sigs chan<- os.Signal)
	}{
		{"second SIGTERM", func(_ context.CancelFunc, sigs chan<- os.Signal) { sigs <- syscall.SIGTERM }},
		{"SIGINT", func(cancel context.CancelFunc, _ chan<- os.Signal) { cancel() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := serveOneTerminal(t)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			sigs := make(chan os.Signal, 2)
			done := make(chan error, 1)
			go func() { done <- g.ops.serveUntilStopped(ctx, g.srv, sigs, g.serveErr, nil) }()
			sigs <- syscall.SIGTERM
			waitfor.Cond(t, "the drain", func() bool { return strings.Contains(g.logs.String(), "msg=draining") })
			tc.stop(cancel, sigs)
			if err := waitReturn(t, done); err != nil {
				t.Fatalf("got %v, want a clean stop", err)
			}
			for _, claim := range []string{"drained: no terminal left", "drain timeout"} {
				if strings.Contains(g.logs.String(), claim) {
					t.Errorf("the log says %q:\n%s", claim, g.logs.String())
				}
			}
		})
	}
}

// TestServeFailureClosesTerminals: when serving fails, the live terminals
// are closed (with their closing message) before serveUntilStopped
// returns the error.
func TestServeFailureClosesTerminals(t *testing.T) {
	g := serveOneTerminal(t)
	done := make(chan error, 1)
	go func() { done <- g.ops.serveUntilStopped(t.Context(), g.srv, nil, g.serveErr, nil) }()
	g.ln.Close()
	if err := waitReturn(t, done); err == nil {
		t.Error("got no error, want the listener's")
	}
	if n := len(g.srv.Terminals().List()); n != 0 {
		t.Errorf("got %d terminals left, want none", n)
	}
}

// servedGateway is a server with one client that holds a terminal.
type servedGateway struct {
	srv      *server.Server
	ln       net.Listener
	serveErr chan error
	ops      *operations
	logs     *syncbuf.Buffer
}

// serveOneTerminal serves a gateway (drain timeout: an hour) to one
// Socket.IO client, which holds a terminal.
func serveOneTerminal(t *testing.T) *servedGateway {
	t.Helper()
	g := &servedGateway{logs: new(syncbuf.Buffer), serveErr: make(chan error, 1)}
	log := slog.New(slog.NewTextHandler(g.logs, nil))
	// The terminal waits for a start-session about as long as the SSH
	// timeout: longer than the test.
	var err error
	cfg := server.Config{Assets: assets, Logger: log, SSH: sshbridge.Config{Timeout: time.Minute}}
	if g.srv, err = server.New(cfg); err != nil {
		t.Fatal(err)
	}
	if g.ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	go func() { g.serveErr <- g.srv.Serve(g.ln) }()
	g.ops = &operations{log: log, drainTimeout: time.Hour}
	g.ops.attach(g.srv)
	openSocket(t, "http://"+g.ln.Addr().String())
	waitfor.Cond(t, "the client's terminal", func() bool { return len(g.srv.Terminals().List()) == 1 })
	return g
}

// waitReturn returns what serveUntilStopped returned on done.
func waitReturn(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("serveUntilStopped did not return")
	}
	return nil
}

// openSocket connects a Socket.IO client to the gateway's namespace over
// long-polling, which gives it a terminal; it then neither polls nor
// leaves.
func openSocket(t *testing.T, base string) {
	t.Helper()
	res, err := http.Get(base + "/socket.io/?EIO=4&transport=polling")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	m := regexp.MustCompile(`"sid":"([^"]+)"`).FindSubmatch(body)
	if m == nil {
		t.Fatalf("engine.io open: got %d %q, want a sid", res.StatusCode, body)
	}
	res, err = http.Post(base+"/socket.io/?EIO=4&transport=polling&sid="+string(m[1]), "text/plain", strings.NewReader("40/ssh,"))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("namespace connect: got %d, want 200", res.StatusCode)
	}
}
