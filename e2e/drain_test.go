package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/alfresco-ssh/alfresco-ssh/internal/servicetest"
	"github.com/alfresco-ssh/alfresco-ssh/internal/sshdtest"
)

// Drain on SIGTERM (PROTOCOL.md, Operations), with real processes: one
// node of two drains while its sessions type.

// ticking is a session that types a numbered echo every interval, n
// times; the shell computes each number, so the echoed command line never
// matches.
func ticking(g *gateway, id string, n int, interval time.Duration) scenario {
	steps := []step{{Expect: prompt, TimeoutMs: 20000}}
	for i := 1; i <= n; i++ {
		steps = append(steps, step{Send: fmt.Sprintf("echo tick-$((%d+0))\n", i)},
			step{Expect: fmt.Sprintf("tick-%d\r\n", i), TimeoutMs: 20000}, step{WaitMs: int(interval / time.Millisecond)})
	}
	return scenario{URL: g.url, Transports: []string{"websocket"}, Start: map[string]any{"credentials_uuid": id},
		Steps: steps, WaitEnd: true, TimeoutMs: 90000}
}

// exit waits for the gateway to exit by itself and returns its status.
func (g *gateway) exit(t testing.TB, timeout time.Duration) int {
	t.Helper()
	select {
	case <-g.exited:
		g.exitedOnPurpose = true
		return g.cmd.ProcessState.ExitCode()
	case <-time.After(timeout):
		t.Fatalf("the gateway did not exit within %v", timeout)
	}
	return -1
}

const drainNotice = "\x1b[93mThe gateway is shutting down: this session will be closed in "

func TestDrainOnSIGTERM(t *testing.T) {
	sshd := sshdtest.Start(t)
	redis := servicetest.StartRedis(t)
	const grace, timeout = 2 * time.Second, 8 * time.Second
	a := startGatewayEnv(t, []string{nodeKey}, "--store", redis.URL,
		"--drain-grace", grace.String(), "--drain-timeout", timeout.String())
	b := startGatewayEnv(t, []string{nodeKey}, "--store", redis.URL)

	const sessions = 3
	var clients []pendingClient
	for range sessions {
		clients = append(clients, startClient(t, ticking(a, a.createCredentials(t, login(sshd)), 200, 100*time.Millisecond)))
	}
	waitForCond(t, "the sessions to start", 30*time.Second, func() bool { return a.started() == sessions })

	a.cmd.Process.Signal(syscall.SIGTERM)
	signalled := time.Now()
	waitForCond(t, "/readyz to turn 503", 2*time.Second, func() bool {
		status, _ := getStatus(t, a.url+"/readyz")
		return status == http.StatusServiceUnavailable
	})
	readyFlipped := time.Since(signalled)

	// The other node takes new sessions meanwhile, created on either.
	checkFullSession(t, runClient(t, fullSession(b, b.createCredentials(t, login(sshd)), "b1")), "websocket")
	// After the grace the draining node refuses them.
	waitForCond(t, "the grace to pass", 2*timeout, func() bool { return time.Since(signalled) > grace })
	r := runClient(t, scenario{URL: a.url, Transports: []string{"websocket"},
		Start: map[string]any{"credentials_uuid": a.createCredentials(t, login(sshd))}, WaitReady: new(bool), WaitEnd: true})
	checkEnded(t, r, "shutting down")
	checkFullSession(t, runClient(t, fullSession(b, a.createCredentials(t, login(sshd)), "b2")), "websocket")

	for i, c := range clients {
		r := c.wait(t)
		if r.Closing == nil || !strings.Contains(r.Closing.Output, "\x1b[91mThe gateway is shutting down") {
			t.Errorf("session %d: got closing %+v, want the red shutdown message", i, r.Closing)
		}
		// Two notices: at the signal (the whole timeout left), and when
		// the grace is over; the session types on after both.
		first := strings.Index(r.Output, drainNotice+"8 seconds")
		second := strings.LastIndex(r.Output, drainNotice)
		if first < 0 || second <= first {
			t.Fatalf("session %d: got no notices in order in %q", i, truncate(r.Output, 3000))
		}
		if ticks := strings.Count(r.Output[second:], "\r\ntick-"); ticks < 5 {
			t.Errorf("session %d: got %d echoes after the second notice, want the session to run on", i, ticks)
		}
	}
	if code := a.exit(t, 2*timeout); code != 0 {
		t.Errorf("got exit status %d after the drain, want 0", code)
	}
	t.Logf("drain: /readyz 503 after %v; exit %v after SIGTERM (grace %v, timeout %v)",
		readyFlipped.Round(time.Millisecond), time.Since(signalled).Round(time.Millisecond), grace, timeout)
}

func TestSecondSIGTERMStopsAtOnce(t *testing.T) {
	sshd := sshdtest.Start(t)
	g := startGateway(t, "--drain-timeout", "5m")
	c := startClient(t, ticking(g, g.createCredentials(t, login(sshd)), 1000, 100*time.Millisecond))
	waitForCond(t, "the session to start", 30*time.Second, func() bool { return g.started() == 1 })
	g.cmd.Process.Signal(syscall.SIGTERM)
	waitForCond(t, "the drain", 10*time.Second, func() bool { return g.count("draining") == 1 })
	signalled := time.Now()
	g.cmd.Process.Signal(syscall.SIGTERM)
	r := c.wait(t)
	if r.Closing == nil || !strings.Contains(r.Closing.Output, "\x1b[91mThe gateway is shutting down") {
		t.Errorf("got closing %+v, want the red shutdown message", r.Closing)
	}
	if !strings.Contains(r.Output, drainNotice+"300 seconds") {
		t.Errorf("got no drain notice in %q", truncate(r.Output, 3000))
	}
	if code := g.exit(t, 15*time.Second); code != 0 {
		t.Errorf("got exit status %d, want 0", code)
	}
	t.Logf("second SIGTERM: exit %v after it", time.Since(signalled).Round(time.Millisecond))
}
