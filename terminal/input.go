package terminal

import (
	"io"
	"sync"

	"github.com/alfresco-ssh/alfresco-ssh/sshbridge"
)

// InputBuffer bounds the input that waits for the remote to read it, per
// terminal: a message that arrives when this much is waiting (or that
// would pass it, unless nothing waits) ends the terminal with
// ErrNotReading. So memory per terminal stays bounded whatever a client
// sends: the Socket.IO library hands every message over at once, and
// holding them back there would not bound it.
const InputBuffer = 4 << 20

// inputPiece is the most one write to the shell carries, so that a slow
// remote frees the buffer piece by piece.
const inputPiece = 32 << 10

// inputQueue is the input waiting for the shell, written by one helper
// goroutine, started when input arrives and ending when none waits.
type inputQueue struct {
	mu      sync.Mutex
	pending []string
	size    int  // bytes in pending
	writing bool // the writer runs
}

// Input sends input to the shell, in order, without waiting for the
// remote to read it: it waits in a buffer of at most InputBuffer bytes;
// past that, the remote is not reading, and the terminal ends. Input
// before the shell is up is dropped.
func (t *Terminal) Input(input string) {
	sess := t.sess.Load()
	if sess == nil {
		t.log.Debug("dropped ssh-input before the shell is ready")
		return
	}
	t.Touch()
	t.bytesIn.Add(uint64(len(input)))
	q := &t.input
	q.mu.Lock()
	if q.size > 0 && q.size+len(input) > InputBuffer {
		q.mu.Unlock()
		t.Stop(ErrNotReading)
		return
	}
	q.pending = append(q.pending, input)
	q.size += len(input)
	start := !q.writing
	q.writing = true
	q.mu.Unlock()
	if start {
		go t.writeInput(sess)
	}
}

// writeInput writes the waiting input to the shell until none is left. A
// write blocks while the remote does not read; closing the session ends
// it, and the input still waiting is dropped.
func (t *Terminal) writeInput(sess *sshbridge.Session) {
	q := &t.input
	for {
		q.mu.Lock()
		if len(q.pending) == 0 {
			q.writing = false
			q.mu.Unlock()
			return
		}
		s := q.pending[0]
		piece := s[:min(len(s), inputPiece)]
		q.mu.Unlock()
		_, err := io.WriteString(sess, piece)
		q.mu.Lock()
		if err != nil {
			q.pending, q.size, q.writing = nil, 0, false
			q.mu.Unlock()
			t.log.Debug("write to shell failed", "err", err)
			return
		}
		if rest := s[len(piece):]; rest != "" {
			q.pending[0] = rest
		} else {
			q.pending[0] = ""
			q.pending = q.pending[1:]
		}
		q.size -= len(piece)
		q.mu.Unlock()
	}
}
