package terminal

import (
	"io"
	"sync"
	"time"

	"github.com/alfresco-ssh/alfresco-ssh/sshbridge"
)

// Input waits for the remote in a buffer per terminal. When InputBuffer
// bytes wait (each message counting inputOverhead more, so that many
// small messages are bounded by the memory they hold), the client should
// stop sending: WaitInput blocks until there
// is room, so package server pauses reading the client's connection in
// it, which holds the client back by TCP flow control. Whatever a client
// sends regardless, a message that would take the buffer past
// InputLimit ends the terminal with ErrNotReading, and so does a remote
// that frees no room while the client waits: memory per terminal stays
// bounded.
const (
	InputBuffer = 1 << 20
	InputLimit  = 16 << 20
)

// inputPiece is the most one write to the shell carries, so that a slow
// remote frees the buffer piece by piece.
const inputPiece = 32 << 10

// inputOverhead is what a waiting message holds besides its bytes: its
// item in the queue and the rounding of its allocation.
const inputOverhead = 32

// inputItem is a message for the shell: input, or a new window size. The
// sizes travel with the input so that the remote sees them in the order
// the client sent them (a resize, then a command that reads the size).
type inputItem struct {
	data string
	size *sshbridge.WindowSize
}

// inputQueue is the input waiting for the shell, written by one helper
// goroutine, started when input arrives and ending when none waits.
type inputQueue struct {
	mu      sync.Mutex
	pending []inputItem
	size    int           // bytes in pending, plus inputOverhead each
	writing bool          // the writer runs
	room    chan struct{} // closed when size drops below InputBuffer
}

// Input sends input to the shell, in order, without waiting for the
// remote to read it (see InputBuffer). Input before the shell is up is
// dropped.
func (t *Terminal) Input(input string) {
	t, ok := t.route()
	if !ok {
		return
	}
	sess := t.sess.Load()
	if sess == nil {
		return // not logged: t.log is the owner's until the shell is up
	}
	t.Touch()
	t.bytesIn.Add(uint64(len(input)))
	t.m.input.Add(uint64(len(input)))
	t.queue(sess, inputItem{data: input})
}

// queue gives item to the writer, starting it when it does not run.
func (t *Terminal) queue(sess *sshbridge.Session, item inputItem) {
	start, ok := t.input.push(item)
	if !ok {
		t.Stop(ErrNotReading)
		return
	}
	if start {
		go t.writeInput(sess)
	}
}

// push queues item for the writer. start says that the writer must be
// started; ok is false when the item would take the queue past
// InputLimit, and it is dropped. A size replaces a size that waits
// last, so that sizes alone never fill the queue.
func (q *inputQueue) push(item inputItem) (start, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	// pending[0] may be in the writer's hands: never replace it.
	if n := len(q.pending); item.size != nil && n > 1 && q.pending[n-1].size != nil {
		q.pending[n-1] = item
		return false, true
	}
	cost := len(item.data) + inputOverhead
	if q.size > 0 && q.size+cost > InputLimit {
		return false, false
	}
	q.pending = append(q.pending, item)
	q.size += cost
	start = !q.writing
	q.writing = true
	return start, true
}

// WaitInput returns at once while less than InputBuffer bytes of input
// wait; otherwise it blocks until there is room again or the terminal
// ends. A remote that frees no room within stall ends the terminal with
// ErrNotReading.
func (t *Terminal) WaitInput(stall time.Duration) {
	t, ok := t.route()
	if !ok {
		return
	}
	q := &t.input
	q.mu.Lock()
	if q.size < InputBuffer {
		q.mu.Unlock()
		return
	}
	if q.room == nil {
		q.room = make(chan struct{})
	}
	room := q.room
	q.mu.Unlock()
	if t.link.resumable.Load() {
		// The client cannot acknowledge output while it is not read:
		// output must not wait for its acknowledgements meanwhile, or
		// the remote, blocked on its output, never frees room.
		defer t.rs.log.unreadClient()()
	}
	timer := time.NewTimer(stall)
	defer timer.Stop()
	select {
	case <-room:
	case <-t.done:
	case <-timer.C:
		t.Stop(ErrNotReading)
	}
}

// shellInput is what the input writer needs of a *sshbridge.Session.
type shellInput interface {
	io.Writer
	Resize(sshbridge.WindowSize) error
}

// writeInput writes the waiting input to the shell until none is left. A
// write blocks while the remote does not read; closing the session ends
// it, and the input still waiting is dropped.
func (t *Terminal) writeInput(sess shellInput) {
	q := &t.input
	for {
		q.mu.Lock()
		if len(q.pending) == 0 {
			q.writing = false
			q.mu.Unlock()
			return
		}
		item := q.pending[0]
		piece := item.data[:min(len(item.data), inputPiece)]
		q.mu.Unlock()
		var err error
		if item.size != nil {
			if err := sess.Resize(*item.size); err != nil {
				t.log.Debug("resize failed", "err", err)
			}
		} else {
			_, err = io.WriteString(sess, piece)
		}
		q.mu.Lock()
		if err != nil {
			q.pending, q.size, q.writing = nil, 0, false
			q.freeRoom()
			q.mu.Unlock()
			t.log.Debug("write to shell failed", "err", err)
			return
		}
		q.size -= len(piece)
		if rest := item.data[len(piece):]; rest != "" {
			q.pending[0].data = rest
		} else {
			q.pending[0] = inputItem{}
			q.pending = q.pending[1:]
			q.size -= inputOverhead
		}
		if q.size < InputBuffer {
			q.freeRoom()
		}
		q.mu.Unlock()
	}
}

// freeRoom wakes those waiting for room. q.mu must be held.
func (q *inputQueue) freeRoom() {
	if q.room != nil {
		close(q.room)
		q.room = nil
	}
}
