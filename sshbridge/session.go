package sshbridge

import (
	"io"
	"sync"

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
type Session struct {
	client *ssh.Client
	sess   *ssh.Session
	stdin  io.WriteCloser
	stdout io.Reader
	stderr io.Reader

	closeOnce sync.Once
}

func newSession(client *ssh.Client, term string, size WindowSize) (*Session, error) {
	sess, err := client.NewSession()
	if err != nil {
		return nil, err
	}
	s := &Session{client: client, sess: sess}
	modes := ssh.TerminalModes{
		ssh.ECHO:          1,
		ssh.TTY_OP_ISPEED: 38400,
		ssh.TTY_OP_OSPEED: 38400,
	}
	// x/crypto takes rows before columns.
	if err := sess.RequestPty(term, size.Rows, size.Cols, modes); err != nil {
		sess.Close()
		return nil, err
	}
	if s.stdin, err = sess.StdinPipe(); err == nil {
		if s.stdout, err = sess.StdoutPipe(); err == nil {
			s.stderr, err = sess.StderrPipe()
		}
	}
	if err == nil {
		err = sess.Shell()
	}
	if err != nil {
		sess.Close()
		return nil, err
	}
	return s, nil
}

// Read reads shell output. It blocks until output is available and returns
// everything that is buffered, up to len(p).
func (s *Session) Read(p []byte) (int, error) { return s.stdout.Read(p) }

// Stderr returns the extended-data (standard error) stream.
func (s *Session) Stderr() io.Reader { return s.stderr }

// Write sends input to the shell. It blocks while the remote is not reading.
func (s *Session) Write(p []byte) (int, error) { return s.stdin.Write(p) }

// Resize tells the remote PTY its new size.
func (s *Session) Resize(size WindowSize) error {
	return s.sess.WindowChange(size.Rows, size.Cols)
}

// Close ends the shell and the SSH connection. It is safe to call more than
// once and from any goroutine.
func (s *Session) Close() error {
	var err error
	s.closeOnce.Do(func() {
		// Closing the connection ends the channel too. Closing the channel
		// first would send a message, which blocks while the network is
		// stalled or a Write holds the connection, so Close would hang.
		err = s.client.Close()
	})
	return err
}
