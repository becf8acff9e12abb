package sshbridge_test

import (
	"bytes"
	"context"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/alfresco-ssh/alfresco-ssh/internal/sshdtest"
	"github.com/alfresco-ssh/alfresco-ssh/sshbridge"
)

// footprintSessions is how many idle sessions the footprint tests open.
const footprintSessions = 20

// maxGoroutinesPerSession bounds the goroutines an idle Session keeps:
// x/crypto's transport reader, key-exchange loop and mux loop, and the
// one that serves the requests and channel opens the remote sends.
const maxGoroutinesPerSession = 4

// bridgeLabel marks, in the goroutine profile, the goroutines started by
// Dial (goroutines inherit their creator's profiler labels), so that they
// can be told from the in-process server's.
var bridgeLabel = pprof.Labels("sshbridge-test", "bridge")

// labelledGoroutines counts the live goroutines labelled bridgeLabel.
func labelledGoroutines(t *testing.T) int {
	t.Helper()
	var b bytes.Buffer
	if err := pprof.Lookup("goroutine").WriteTo(&b, 1); err != nil {
		t.Fatalf("goroutine profile: %v", err)
	}
	want := `# labels: {"sshbridge-test":"bridge"}`
	n, count := 0, 0
	for line := range strings.Lines(b.String()) {
		line = strings.TrimSpace(line)
		if c, _, ok := strings.Cut(line, " @ "); ok {
			count, _ = strconv.Atoi(c)
			continue
		}
		if line == want {
			n += count
		}
	}
	return n
}

// liveHeap returns the live heap after garbage collection. The second
// cycle empties the sync.Pools, which keep their objects for one cycle.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// openIdle opens n sessions with Dial running under bridgeLabel and closes
// them at cleanup. It calls opened, if not nil, after each Dial.
func openIdle(t *testing.T, n int, cfg sshbridge.Config, target sshbridge.Target, opened func()) []*sshbridge.Session {
	t.Helper()
	sessions := make([]*sshbridge.Session, 0, n)
	t.Cleanup(func() {
		for _, s := range sessions {
			s.Close()
		}
	})
	for range n {
		var (
			sess *sshbridge.Session
			err  error
		)
		pprof.Do(t.Context(), bridgeLabel, func(ctx context.Context) {
			sess, err = sshbridge.Dial(ctx, cfg, target, sshbridge.DefaultWindowSize)
		})
		if err != nil {
			t.Fatalf("Dial: got error %v, want nil", err)
		}
		sessions = append(sessions, sess)
		if opened != nil {
			opened()
		}
	}
	return sessions
}

// footprint is what footprintSessions idle sessions cost in all. The
// goroutines are compared in all, not per session, where an integer
// division would hide up to footprintSessions-1 of them.
type footprint struct {
	goroutines int   // all new goroutines of the process
	bridge     int   // those labelled bridgeLabel
	heap       int64 // bytes of live heap
}

func perSession(n int) float64 { return float64(n) / footprintSessions }

// checkGoroutines fails the test if n goroutines are more than
// maxGoroutinesPerSession for each of the footprintSessions sessions.
func checkGoroutines(t *testing.T, n int) {
	t.Helper()
	if n > maxGoroutinesPerSession*footprintSessions {
		t.Errorf("goroutines of %d idle sessions: got %d (%.2f each), want at most %d each",
			footprintSessions, n, perSession(n), maxGoroutinesPerSession)
	}
}

// measureIdle opens footprintSessions idle sessions and measures them, then
// closes them and checks that every goroutine they started has ended. A
// first session is opened and closed before: it grows the stack of the
// test goroutine (which runs Dial) and runs one-time initialisations, so
// that neither is counted.
func measureIdle(t *testing.T, cfg sshbridge.Config, target sshbridge.Target, opened func()) footprint {
	t.Helper()
	ignore := goleak.IgnoreCurrent()
	openIdle(t, 1, cfg, target, opened)[0].Close()
	goleak.VerifyNone(t, ignore)

	goroutines := runtime.NumGoroutine()
	heap := liveHeap()
	sessions := openIdle(t, footprintSessions, cfg, target, opened)
	heapAfter := liveHeap()
	f := footprint{
		goroutines: runtime.NumGoroutine() - goroutines,
		bridge:     labelledGoroutines(t),
		heap:       int64(heapAfter) - int64(heap),
	}
	for _, s := range sessions {
		s.Close()
	}
	goleak.VerifyNone(t, ignore)
	return f
}

// TestSessionFootprint counts the goroutines each open idle Session keeps
// and reports its memory, against the in-process server (the goroutines
// of the bridge are told from the server's by their profiler label).
func TestSessionFootprint(t *testing.T) {
	srv, target := passwordServer(t)
	// The server queues each pty-req for the test: take it.
	f := measureIdle(t, sshbridge.Config{Timeout: waitTimeout}, target, func() { srv.nextEvent(t) })
	t.Logf("per idle session: %.2f bridge goroutines (%.2f with the in-process server's); "+
		"heap %d bytes (both sides)", perSession(f.bridge), perSession(f.goroutines), f.heap/footprintSessions)
	checkGoroutines(t, f.bridge)
}

// TestSessionFootprintSSHD measures an idle Session against a real sshd,
// where every goroutine and byte in this process is the bridge's, with a
// password and with an RSA key.
func TestSessionFootprintSSHD(t *testing.T) {
	if testing.Short() {
		t.Skip("starts sshd")
	}
	sshd := sshdtest.Start(t)
	target := sshbridge.Target{Host: sshd.Host, Port: sshd.Port, User: sshd.User}
	password, key := target, target
	password.Password = sshd.Password
	key.PrivateKey = sshd.Key(t, "rsa-openssh")
	for _, tt := range []struct {
		name   string
		target sshbridge.Target
	}{
		{"password", password},
		{"rsa key", key},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := measureIdle(t, sshbridge.Config{Timeout: waitTimeout}, tt.target, nil)
			t.Logf("per idle session: %.2f goroutines, heap %d bytes", perSession(f.goroutines), f.heap/footprintSessions)
			checkGoroutines(t, f.goroutines)
		})
	}
}
