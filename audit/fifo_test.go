//go:build unix

package audit

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestFIFO: a named pipe as the audit log (a log shipper's) is refused at
// once while nobody reads it, as at a SIGHUP after the reader left,
// instead of blocking the open, and so the gateway's start or its signal
// handling, until one comes; with a reader the lines reach it.
func TestFIFO(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.pipe")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	opened := make(chan error, 1)
	go func() {
		l, err := Open(path, nil)
		if err == nil {
			l.Close()
		}
		opened <- err
	}()
	select {
	case err := <-opened:
		if err == nil {
			t.Error("Open of a FIFO without a reader: got no error")
		}
	case <-time.After(10 * time.Second):
		r, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0) // lets the open go
		if err == nil {
			defer r.Close()
		}
		<-opened
		t.Fatal("Open of a FIFO without a reader waited for one")
	}

	r, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	l, err := Open(path, nil)
	if err != nil {
		t.Fatalf("Open of a FIFO with a reader: %v", err)
	}
	defer l.Close()
	if err := l.Write(Event{Event: SessionStart, Session: "s1"}); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil || !strings.Contains(line, `"session":"s1"`) {
		t.Errorf("the reader got %q, %v, want the line", line, err)
	}
}
