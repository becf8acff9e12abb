// Package audit writes the gateway's audit log: one JSON object per line
// for each session start, end and failed start, saying who connected
// where. It never writes a password, key, passphrase, token or credentials
// id: its Event type has no field for one.
//
// Concurrency: a Log is safe for concurrent use; each line is written
// whole, under a lock, with one write call.
package audit

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"time"
)

// Kinds of event.
const (
	SessionStart  = "session_start"
	SessionEnd    = "session_end"
	SessionFailed = "session_failed"
	FileTransfer  = "file_transfer"
)

// Event is one line of the audit log. The fields of an end (duration,
// bytes) are left out of the other kinds; those of a file transfer
// (direction, path, bytes, result) are only in file_transfer.
type Event struct {
	Time    time.Time `json:"time"`
	Event   string    `json:"event"`
	Session string    `json:"session"`
	Client  string    `json:"client"`
	Target  string    `json:"target"` // host:port
	User    string    `json:"user"`
	Auth    string    `json:"auth"`               // password, publickey or keyboard-interactive
	HostKey string    `json:"host_key,omitempty"` // SHA256 fingerprint, once known

	DurationS *float64 `json:"duration_s,omitempty"`
	BytesIn   *uint64  `json:"bytes_in,omitempty"`
	BytesOut  *uint64  `json:"bytes_out,omitempty"`
	Reason    string   `json:"reason,omitempty"`

	Direction string `json:"direction,omitempty"` // upload or download
	Path      string `json:"path,omitempty"`      // the remote file
	Bytes     *int64 `json:"bytes,omitempty"`
	Result    string `json:"result,omitempty"` // ok, or what the user was told
}

// Log is an audit log file, or a stream.
type Log struct {
	path string // "" for a stream

	mu sync.Mutex
	w  io.Writer
	f  *os.File // the open file, nil for a stream
}

// Open opens the audit log: path "-" is stderr, anything else a file
// opened for appending (created 0600).
func Open(path string, stderr io.Writer) (*Log, error) {
	if path == "-" {
		return &Log{w: stderr}, nil
	}
	l := &Log{path: path}
	if err := l.Reopen(); err != nil {
		return nil, err
	}
	return l, nil
}

// Reopen closes the file and opens path again, so that a log rotated away
// (logrotate, then SIGHUP) continues in a new file. For a stream it does
// nothing. A named pipe that nobody reads is an error, not a wait (the
// open is non-blocking; the writes still wait for the reader).
func (l *Log) Reopen() error {
	if l.path == "" {
		return nil
	}
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_NONBLOCK, 0o600)
	if err != nil {
		return fmt.Errorf("audit: open %s: %w", l.path, err)
	}
	l.mu.Lock()
	old := l.f
	l.f, l.w = f, f
	l.mu.Unlock()
	if old != nil {
		return old.Close()
	}
	return nil
}

// Write appends one event as a line. A zero Time is now, in UTC.
func (l *Log) Write(e Event) error {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	e.Time = e.Time.UTC()
	line, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("audit: encode: %w", err)
	}
	line = append(line, '\n')
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, err := l.w.Write(line); err != nil {
		return fmt.Errorf("audit: write: %w", err)
	}
	return nil
}

// Close closes the file; a stream is left open.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f, l.w = nil, io.Discard
	return err
}
