package audit

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func ptr[T any](v T) *T { return &v }

var at = time.Date(2026, 12, 2, 17, 0, 0, 500e6, time.FixedZone("CET", 3600))

func TestLines(t *testing.T) {
	var buf bytes.Buffer
	l, err := Open("-", &buf)
	if err != nil {
		t.Fatal(err)
	}
	base := Event{Time: at, Session: "s1", Client: "192.0.2.7", Target: "10.0.0.5:22", User: "alice",
		Auth: "password", HostKey: "SHA256:abc"}
	start := base
	start.Event = SessionStart
	end := base
	end.Event, end.DurationS, end.BytesIn, end.BytesOut, end.Reason = SessionEnd, ptr(1.5), ptr(uint64(0)), ptr(uint64(42)), "exit"
	failed := base
	failed.Event, failed.HostKey, failed.Reason = SessionFailed, "", "auth_failed"
	for _, e := range []Event{start, end, failed} {
		if err := l.Write(e); err != nil {
			t.Fatal(err)
		}
	}
	want := `{"time":"2026-12-02T16:00:00.5Z","event":"session_start","session":"s1","client":"192.0.2.7","target":"10.0.0.5:22","user":"alice","auth":"password","host_key":"SHA256:abc"}
{"time":"2026-12-02T16:00:00.5Z","event":"session_end","session":"s1","client":"192.0.2.7","target":"10.0.0.5:22","user":"alice","auth":"password","host_key":"SHA256:abc","duration_s":1.5,"bytes_in":0,"bytes_out":42,"reason":"exit"}
{"time":"2026-12-02T16:00:00.5Z","event":"session_failed","session":"s1","client":"192.0.2.7","target":"10.0.0.5:22","user":"alice","auth":"password","reason":"auth_failed"}
`
	if got := buf.String(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestReopen rotates the file away as logrotate does: lines written after
// Reopen go to a new file at the path.
func TestReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.Write(Event{Event: SessionStart, Session: "one"})
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	l.Write(Event{Event: SessionStart, Session: "two"})
	if err := l.Reopen(); err != nil {
		t.Fatal(err)
	}
	l.Write(Event{Event: SessionStart, Session: "three"})
	old, _ := os.ReadFile(path + ".1")
	cur, _ := os.ReadFile(path)
	if n := strings.Count(string(old), "\n"); n != 2 || !strings.Contains(string(old), `"two"`) {
		t.Errorf("rotated file: got %q, want the lines one and two", old)
	}
	if n := strings.Count(string(cur), "\n"); n != 1 || !strings.Contains(string(cur), `"three"`) {
		t.Errorf("new file: got %q, want the line three", cur)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("got mode %v, want 0600", perm)
	}
	if _, err := Open(filepath.Join(path, "not-a-dir", "x"), nil); err == nil {
		t.Error("Open under a file: got nil, want an error")
	}
}

// TestConcurrentLinesWhole writes from many goroutines while the file is
// reopened: every line arrives whole.
func TestConcurrentLinesWhole(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 200 {
				l.Write(Event{Event: SessionEnd, Session: strings.Repeat("x", 500), DurationS: ptr(1.0)})
			}
		})
	}
	wg.Go(func() {
		for range 20 {
			l.Reopen()
		}
	})
	wg.Wait()
	l.Close()
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != 1600 {
		t.Fatalf("got %d lines, want 1600", len(lines))
	}
	for _, line := range lines {
		if !strings.HasPrefix(line, `{"time":`) || !strings.HasSuffix(line, `"duration_s":1}`) {
			t.Fatalf("got a broken line %q", line)
		}
	}
}
