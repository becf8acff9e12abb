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
	"github.com/alfresco-ssh/alfresco-ssh/server"
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
			var logs syncbuf.Buffer
			log := slog.New(slog.NewTextHandler(&logs, nil))
			srv, err := server.New(server.Config{Assets: assets, Logger: log})
			if err != nil {
				t.Fatal(err)
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			serveErr := make(chan error, 1)
			go func() { serveErr <- srv.Serve(ln) }()
			ops := &operations{log: log, drainTimeout: time.Hour}
			ops.attach(srv)
			openSocket(t, "http://"+ln.Addr().String())
			waitUntil(t, "the client's terminal", func() bool { return len(srv.Terminals().List()) == 1 })

			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			sigs := make(chan os.Signal, 2)
			done := make(chan error, 1)
			go func() { done <- ops.serveUntilStopped(ctx, srv, sigs, serveErr, nil) }()
			sigs <- syscall.SIGTERM
			waitUntil(t, "the drain", func() bool { return strings.Contains(logs.String(), "msg=draining") })
			tc.stop(cancel, sigs)
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("got %v, want a clean stop", err)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("serveUntilStopped did not return")
			}
			for _, claim := range []string{"drained: no terminal left", "drain timeout"} {
				if strings.Contains(logs.String(), claim) {
					t.Errorf("the log says %q:\n%s", claim, logs.String())
				}
			}
		})
	}
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

// waitUntil polls cond until it holds, failing the test after 10 seconds.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
