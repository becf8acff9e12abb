package sshbridge

import (
	"encoding/binary"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"golang.org/x/crypto/ssh"
)

// Session is an interactive shell on a remote PTY.
//
// Read returns the shell's output (standard output; with a PTY that is
// everything the shell prints) and io.EOF once the shell has ended. Output
// the caller has not read yet stays in the SSH channel's window, so a slow
// reader makes the remote wait: memory per session is bounded by the window.
// Stderr returns the channel's extended-data stream, which PTY shells rarely
// use; it must be drained too, since both share one window.
//
// What the remote sends on its own (global requests, channel opens, the
// session channel's requests) must be answered for the session's life, or
// the connection stalls: a Session from Dial does it on one goroutine of
// its own besides x/crypto's three for the connection, which ends when the
// connection does; a Session from Open leaves it to its owner's loop
// (Serve), so that the owner's goroutine is the only one added.
type Session struct {
	conn  ssh.Conn
	ch    ssh.Channel
	reqs  <-chan *ssh.Request   // global requests
	chans <-chan ssh.NewChannel // channel opens
	chReq <-chan *ssh.Request   // the session channel's requests
	auth  string                // the authentication method that succeeded
	key   string                // the host key's SHA256 fingerprint
	sftp  sftpConn              // opened by the first call to SFTP (sftp.go)
	// exited is set by Serve when the remote sends the shell's exit-status
	// or exit-signal.
	exited atomic.Bool

	closeOnce sync.Once
}

// ptyModes are the terminal modes of the PTY request, encoded as RFC 4254
// section 8 and x/crypto's Session.RequestPty do: an opcode byte and a
// uint32 value each, then TTY_OP_END (0).
var ptyModes = func() string {
	var b []byte
	for _, m := range []struct {
		op  byte
		val uint32
	}{
		{ssh.ECHO, 1},
		{ssh.TTY_OP_ISPEED, 38400},
		{ssh.TTY_OP_OSPEED, 38400},
	} {
		b = append(b, m.op)
		b = binary.BigEndian.AppendUint32(b, m.val)
	}
	return string(append(b, 0))
}()

// ptyRequest is the payload of "pty-req" (RFC 4254 section 6.2): columns
// before rows, then the size in pixels, which x/crypto sets to 8 per cell.
type ptyRequest struct {
	Term                      string
	Cols, Rows, Width, Height uint32
	Modes                     string
}

// windowChange is the payload of "window-change" (RFC 4254 section 6.7).
type windowChange struct {
	Cols, Rows, Width, Height uint32
}

// openShell opens a session channel on conn and starts a shell on a PTY.
// Nobody answers the remote's own requests meanwhile: x/crypto queues up
// to 16 of each kind, plenty for a handshake, and a remote that sends more
// stalls only its own Dial, which its deadline ends. On error the caller
// closes conn.
func openShell(conn ssh.Conn, term string, size WindowSize) (ssh.Channel, <-chan *ssh.Request, error) {
	ch, reqs, err := conn.OpenChannel("session", nil)
	if err != nil {
		return nil, nil, err
	}
	rows, cols := uint32(size.Rows), uint32(size.Cols)
	pty := ssh.Marshal(ptyRequest{
		Term: term, Cols: cols, Rows: rows, Width: cols * 8, Height: rows * 8, Modes: ptyModes,
	})
	if err := request(ch, "pty-req", pty); err != nil {
		return nil, nil, err
	}
	if err := request(ch, "shell", nil); err != nil {
		return nil, nil, err
	}
	return ch, reqs, nil
}

// request sends a channel request and waits for the remote to accept it.
func request(ch ssh.Channel, name string, payload []byte) error {
	ok, err := ch.SendRequest(name, true, payload)
	if err == nil && !ok {
		err = fmt.Errorf("request %s: refused by the server", name)
	}
	return err
}

// Serve answers what the remote sends on its own, on the calling
// goroutine: global requests (such as keepalive@openssh.com, which OpenSSH
// sends with want-reply when ClientAliveInterval is set and disconnects if
// unanswered, or hostkeys-00@openssh.com after authentication), channel
// opens, and the requests on the session channel (exit-status,
// exit-signal, eow@openssh.com). Requests are refused, as
// ssh.DiscardRequests does, and channel opens rejected. In the same loop
// it passes each value received from events to handle, so that the owner
// of a Session from Open serves it from its own event loop instead of
// spending a goroutine on it (x/crypto delivers each kind on a Go channel
// that must be drained; ssh.NewClient and ssh.Session would spend four
// goroutines on these and on waiting for the end).
//
// Serve returns once the session channel has closed (the shell has ended,
// or the connection has) or, with a nil events channel, once the
// connection has ended: x/crypto then closes all three channels.
func Serve[E any](s *Session, events <-chan E, handle func(E)) {
	reqs, chans, chReq := s.reqs, s.chans, s.chReq
	for chReq != nil || (events == nil && (reqs != nil || chans != nil)) {
		select {
		case r, ok := <-reqs:
			if !ok {
				reqs = nil
				continue
			}
			decline(r)
		case nc, ok := <-chans:
			if !ok {
				chans = nil
				continue
			}
			nc.Reject(ssh.Prohibited, "no channels are accepted")
		case r, ok := <-chReq:
			if !ok {
				chReq = nil
				continue
			}
			if r.Type == "exit-status" || r.Type == "exit-signal" {
				s.exited.Store(true)
			}
			decline(r)
		case e := <-events:
			handle(e)
		}
	}
}

// decline answers a request that wants a reply with failure.
func decline(r *ssh.Request) {
	if r.WantReply {
		r.Reply(false, nil)
	}
}

// Exited reports whether the remote has sent the shell's exit status (or
// the signal that ended it), as Serve saw it. A session whose channel
// closed without it lost its connection or was closed by the server.
func (s *Session) Exited() bool { return s.exited.Load() }

// Auth returns the authentication method that logged in: "password",
// "keyboard-interactive" or "publickey".
func (s *Session) Auth() string { return s.auth }

// HostKey returns the SHA256 fingerprint of the server's host key.
func (s *Session) HostKey() string { return s.key }

// Read reads shell output. It blocks until output is available and returns
// everything that is buffered, up to len(p).
func (s *Session) Read(p []byte) (int, error) { return s.ch.Read(p) }

// Stderr returns the extended-data (standard error) stream.
func (s *Session) Stderr() io.Reader { return s.ch.Stderr() }

// Write sends input to the shell. It blocks while the remote is not reading.
func (s *Session) Write(p []byte) (int, error) { return s.ch.Write(p) }

// Resize tells the remote PTY its new size.
func (s *Session) Resize(size WindowSize) error {
	rows, cols := uint32(size.Rows), uint32(size.Cols)
	_, err := s.ch.SendRequest("window-change", false, ssh.Marshal(windowChange{
		Cols: cols, Rows: rows, Width: cols * 8, Height: rows * 8,
	}))
	return err
}

// Close ends the shell and the SSH connection. It is safe to call more than
// once and from any goroutine. It does not wait for the connection's
// goroutines, which end as soon as they see the connection closed.
func (s *Session) Close() error {
	var err error
	s.closeOnce.Do(func() {
		// Closing the connection ends the channel too. Closing the channel
		// first would send a message, which blocks while the network is
		// stalled or a Write holds the connection, so Close would hang.
		err = s.conn.Close()
	})
	return err
}
