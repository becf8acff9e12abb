package terminal

import (
	"context"
	"crypto/sha256"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Resume (PROTOCOL.md, Extensions): a terminal whose client opted in
// (StartResumable) numbers its output messages, keeps those the client
// has not acknowledged, and outlives its client: when the client goes
// away the terminal is detached, not ended, for Config.ResumeWindow. A
// new client takes it back with the single-use resume token of the last
// connection-ready (Resume): it gets a new token, the messages it has not
// shown, in order, then live output.
//
// A client's terminal and the one it resumed are two Terminals: the new
// client is first Waiting on a terminal of its own (Manager.Open), whose
// Resume finds the detached one by token, hands its client over and ends
// without a word. From then on the events of that client (Input, Resize,
// Ack, Stop) go to the resumed terminal, which acts only on those of the
// client it holds now: a former client's are dropped.

var (
	// ErrResumeExpired: the client went away and did not come back within
	// the resume window.
	ErrResumeExpired = errors.New("detached for longer than the resume window")
	// ErrResumeRefused: resume-session with a token that is unknown, used,
	// or of a session that has ended.
	ErrResumeRefused = errors.New("resume token unknown, used or expired")
	// ErrTakenOver: another client resumed the session; the one that had
	// it gets this closing message.
	ErrTakenOver = errors.New("session resumed by another client")
)

// Defaults of Config.ResumeBuffer and the repaint kept for a client that
// lost its screen.
const (
	DefaultResumeBuffer = 256 << 10
	repaintBytes        = 64 << 10
)

// link ties a client to the terminal that holds its session.
type link struct {
	// resumable is set, after rs, when the client opted in: other
	// goroutines may read rs once they have seen it.
	resumable atomic.Bool
	// into is the terminal this one's client resumed: its events go there.
	into atomic.Pointer[Terminal]
	// attached is, on a resumable terminal, the terminal whose client it
	// holds now (itself at first, the resuming one after a resume); nil
	// while detached.
	attached atomic.Pointer[Terminal]
	// holder is the terminal whose client held this one last, once a
	// resume has moved it (see clientAddr).
	holder atomic.Pointer[Terminal]
	// gone is set when this terminal's client has left (Stop with
	// ErrClientGone), possibly before a resume reached the other terminal.
	gone atomic.Bool
}

// resumeState is what a resumable terminal keeps; the owner holds it.
type resumeState struct {
	log      *replay
	tokenKey *[sha256.Size]byte // the current token's hash; guarded by m.mu
	detached uint64             // counts detachments: an old expiry is ignored
	expiry   *time.Timer
	creds    [sha256.Size]byte // the credentials id's hash (Manager.Resumable)
	// resumer is the terminal whose client took the token and waits for
	// evAttach: set by takeResumeToken, cleared by attach, or by finish,
	// which refuses it (the event may come too late, or never be handled).
	resumer atomic.Pointer[Terminal]
	// counted: the terminal is counted in Manager.detached, under the
	// key of its clientAddr.
	counted bool
}

// StartResumable is Start for a client that opted in to resume; without
// Config.ResumeWindow it is Start.
func (t *Terminal) StartResumable(id string) { t.StartWith(id, StartOptions{Resume: true}) }

// Resume takes back, for this terminal's client, the session of the
// resume token (resume-session); last is the highest seq the client has
// shown (0: it lost its screen and wants the recent output again). The
// client gets connection-ready with a new token and the output it has
// not shown, or the closing message when the token is unknown, used or
// expired. Only a Waiting terminal resumes.
func (t *Terminal) Resume(token string, last uint64) {
	t.post(event{kind: evResume, text: token, seq: last})
}

// Ack tells that the client has shown the output up to seq (ssh-ack):
// that output need not be kept for a resume any more.
func (t *Terminal) Ack(seq uint64) {
	if h, ok := t.route(); ok && h.link.resumable.Load() {
		h.rs.log.ack(seq)
	}
}

// route returns the terminal that holds this terminal's client's session:
// itself, or the one the client resumed. ok is false when the client no
// longer holds it (another client resumed it, or it is detached).
func (t *Terminal) route() (h *Terminal, ok bool) {
	h = t
	if into := t.link.into.Load(); into != nil {
		h = into
	}
	if h.link.resumable.Load() && h.link.attached.Load() != t {
		return h, false
	}
	return h, true
}

// optIn makes a Waiting terminal resumable, when resume is on; id is
// the credentials id of its start-session.
func (t *Terminal) optIn(resume bool, id string) {
	if !resume || t.State() != Waiting || t.m.cfg.ResumeWindow <= 0 {
		return
	}
	t.rs = &resumeState{
		log:   newReplay(t.client, t.m.cfg.ResumeBuffer, len(t.m.cfg.OutputTail)),
		creds: sha256.Sum256([]byte(id)),
	}
	t.link.attached.Store(t)
	t.link.resumable.Store(true)
}

// current is the client that gets this terminal's output; nil while
// detached.
func (t *Terminal) current() Client {
	if t.rs == nil {
		return t.client
	}
	if a := t.link.attached.Load(); a != nil {
		return a.client
	}
	return nil
}

// output sends a packet that is not terminal output (a notice, the
// closing message): numbered and kept for a resume, if resumable.
func (t *Terminal) output(packet []byte) {
	if t.rs != nil {
		t.rs.log.add(packet, false)
		return
	}
	t.client.Output(packet, nil)
}

// resumeReady fills in what connection-ready says about resume, as the
// shell comes up, and registers the terminal under its credentials id
// (Manager.Resumable).
func (t *Terminal) resumeReady(ready *Ready) {
	if t.rs == nil {
		return
	}
	ready.ResumeToken = t.m.newResumeToken(t)
	t.m.mu.Lock()
	t.m.byCredentials[t.rs.creds] = t
	t.m.mu.Unlock()
}

// stopFrom handles Stop: a former client's leaving or timeout is
// dropped, and the leaving of the current client of a running resumable
// terminal detaches it.
func (t *Terminal) stopFrom(from *Terminal, reason error) {
	if t.rs != nil && from != nil && (errors.Is(reason, ErrClientGone) || errors.Is(reason, ErrInactive)) {
		if t.link.attached.Load() != from {
			return
		}
		if errors.Is(reason, ErrClientGone) && t.State() == Running {
			t.detach()
			return
		}
	}
	t.stop(reason)
}

// detach lets the client go and keeps the session for the resume window.
func (t *Terminal) detach() {
	t.link.attached.Store(nil)
	t.rs.log.detach()
	t.rs.detached++
	n := t.rs.detached
	t.rs.expiry = time.AfterFunc(t.m.cfg.ResumeWindow, func() { t.post(event{kind: evExpire, seq: n}) })
	t.countDetached(true)
	t.log.Info("terminal detached", "session", t.id, "window", t.m.cfg.ResumeWindow)
}

// expire ends a terminal still detached at the end of its resume window.
func (t *Terminal) expire(n uint64) {
	if t.rs == nil || n != t.rs.detached || t.link.attached.Load() != nil {
		return
	}
	t.stop(ErrResumeExpired)
}

// resumeInto handles Resume on a Waiting terminal: the token's terminal
// gets this one's client, and this one ends without a word.
func (t *Terminal) resumeInto(token string, last uint64) {
	if t.State() != Waiting {
		t.log.Debug("ignored resume-session after start-session")
		return
	}
	h := t.m.takeResumeToken(token, t)
	if h == nil {
		t.finish(ErrResumeRefused) // logged there, with the reason
		return
	}
	t.link.into.Store(h)
	t.setState(Ended)
	t.m.forget(t)
	// This socket's terminal ends here without finish: the session it
	// joins holds the slot and the limits.
	if t.startTimer != nil {
		t.startTimer.Stop()
	}
	if t.slot != nil {
		t.slot()
		t.slot = nil
	}
	close(t.done)
	h.post(event{kind: evAttach, from: t, seq: last}) // if h ends first, its finish refuses t
}

// attach handles evAttach: the client of from (which resumed with this
// terminal's token) gets the session.
func (t *Terminal) attach(from *Terminal, last uint64) {
	t.rs.resumer.Store(nil)
	if t.State() != Running {
		from.closeClient(ErrResumeRefused)
		return
	}
	if old := t.link.attached.Load(); old != nil {
		// The session was live (a reload faster than the old page's
		// goodbye, or a copied tab): the old client is told and let go.
		old.client.Output(t.m.closingPacket(ErrTakenOver), nil)
		old.client.Close()
	}
	if t.rs.expiry != nil {
		t.rs.expiry.Stop()
	}
	t.countDetached(false) // under the former client's key
	t.rs.detached++
	t.link.attached.Store(from)
	t.link.holder.Store(from)
	ready := Ready{ResumeToken: t.m.newResumeToken(t), Resumed: true}
	if t.m.cfg.FilesTokens {
		ready.FilesToken = t.m.newFilesToken(t)
	}
	replayed := t.rs.log.attach(from.client, last, func(partial bool) {
		ready.Partial = partial
		from.client.Ready(ready)
	})
	t.log.Info("terminal resumed", "session", t.id, "from", from.addr, "seq", last, "replayed_bytes", replayed)
	t.Touch()
	if from.link.gone.Load() {
		t.detach() // the client left before it got here
	}
}

// endResume forgets an ending terminal's resume state, once the Manager
// has forgotten its token: a client that took the token before gets the
// closing message of a refused resume.
func (t *Terminal) endResume() {
	if t.rs == nil {
		return
	}
	if t.rs.expiry != nil {
		t.rs.expiry.Stop()
	}
	t.countDetached(false)
	if r := t.rs.resumer.Swap(nil); r != nil {
		r.closeClient(ErrResumeRefused)
	}
}

// The session limits (Config.Connect) count a detached terminal, as it
// holds its SSH session, and count every new client from its connection
// on; so a client at its limit could not take back the sessions it
// left. Such a client is let in without a slot, to resume only (a
// start-session gets the refusal), while its address has more detached
// terminals than such clients: the limits stay bounded, and the session
// it resumes holds the slot.

// clientAddr is the address of the client that holds the session, or
// left it: the first one's until a resume.
func (t *Terminal) clientAddr() string {
	if h := t.link.holder.Load(); h != nil {
		return h.addr
	}
	return t.addr
}

// countDetached counts t in Manager.detached, or no longer.
func (t *Terminal) countDetached(detached bool) {
	if t.rs.counted == detached {
		return
	}
	t.rs.counted = detached
	n := 1
	if !detached {
		n = -1
	}
	t.m.mu.Lock()
	count(t.m.detached, t.m.clientKey(t.clientAddr()), n)
	t.m.mu.Unlock()
}

// borrow lets t in without a slot, refused by Config.Connect, when its
// address has a detached terminal to resume that no other such client
// has taken up. m.mu is held.
func (m *Manager) borrow(t *Terminal, refused error) bool {
	key := m.clientKey(t.addr)
	if m.borrowers[key] >= m.detached[key] {
		return false
	}
	count(m.borrowers, key, 1)
	t.borrowed = refused
	return true
}

// count adds n to counts[key], forgetting a key counted 0.
func count(counts map[string]int, key string, n int) {
	if counts[key] += n; counts[key] == 0 {
		delete(counts, key)
	}
}

// newResumeToken gives t a new resume token, in place of its last one.
func (m *Manager) newResumeToken(t *Terminal) string {
	return m.newToken(m.byResume, &t.rs.tokenKey, t)
}

// takeResumeToken returns the terminal of a resume token, for the client
// of from, and forgets the token (single use); nil for an unknown one.
func (m *Manager) takeResumeToken(token string, from *Terminal) *Terminal {
	key := sha256.Sum256([]byte(token))
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.byResume[key]
	if !ok {
		return nil
	}
	delete(m.byResume, key)
	t.rs.tokenKey = nil
	t.rs.resumer.Store(from)
	return t
}

// forgetResume drops an ended terminal's tokens; m.mu is held.
func (m *Manager) forgetResume(t *Terminal) {
	if t.rs == nil {
		return
	}
	if t.rs.tokenKey != nil {
		delete(m.byResume, *t.rs.tokenKey)
	}
	if m.byCredentials[t.rs.creds] == t {
		delete(m.byCredentials, t.rs.creds)
	}
}

// Resumable reports whether the credentials id started a resumable
// terminal that is still there, running or detached: its page may be
// served again (a reload resumes with the token the tab kept).
func (m *Manager) Resumable(credentialsID string) bool {
	key := sha256.Sum256([]byte(credentialsID))
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.byCredentials[key]
	return ok
}

// replay numbers a resumable terminal's output messages and keeps each
// until the client acknowledges it, plus the most recent acknowledged
// ones (at least repaintBytes) for a client that lost its screen. While
// unacknowledged messages hold limit bytes or more, send waits: the
// pump stops reading the SSH channel and the remote is paused by SSH flow
// control, so nothing is lost and memory stays bounded, whether the
// client is slow or gone (but not while the gateway is not reading the
// client: see unread). It is used by the pump, the owner and the
// client's acknowledgements; a mutex guards it, held only for
// bookkeeping and Client calls, which never block.
type replay struct {
	limit   int
	tailLen int // len(Config.OutputTail)

	// gen counts attachments (a former client's callbacks are ignored)
	// and busy says a terminal output message is on its way to the
	// client: atomics, as a client may call written from within Output.
	gen  atomic.Uint64
	busy atomic.Bool
	// wake tells the waiting send (the pump, the only waiter) to look
	// again.
	wake chan struct{}
	// unread counts the client's connections that are not read while the
	// terminal's input waits (WaitInput): acknowledgements do not arrive
	// then, so output to an attached client is not held back for them,
	// and what goes past limit unacknowledged is forgotten as if
	// acknowledged (a resume after that is partial).
	unread atomic.Int32

	mu      sync.Mutex
	client  Client // nil while detached
	seq     uint64 // the last message's number
	acked   uint64
	msgs    []message // consecutive seqs, oldest first
	unacked int       // bytes of the messages after acked
	kept    int       // bytes of msgs
}

// message is one numbered ssh-output message: packet is the whole text
// packet, or, with data, the header of a binary one (binary output)
// whose attachment is data.
type message struct {
	seq    uint64
	packet []byte
	data   []byte
}

func (m message) size() int { return len(m.packet) + len(m.data) }

func newReplay(c Client, limit, tailLen int) *replay {
	if limit <= 0 {
		limit = DefaultResumeBuffer
	}
	return &replay{client: c, limit: limit, tailLen: tailLen, wake: make(chan struct{}, 1)}
}

// send numbers and keeps a message of terminal output and sends it to
// the client, once the previous one is written and there is room.
func (r *replay) send(ctx context.Context, m message) error {
	r.mu.Lock()
	for (r.unacked >= r.limit && !r.ackless()) || (r.client != nil && r.busy.Load()) {
		r.mu.Unlock()
		select {
		case <-r.wake:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
		r.mu.Lock()
	}
	r.add1(m, true)
	r.mu.Unlock()
	return nil
}

// add numbers and keeps a text packet and sends it to the client now.
func (r *replay) add(packet []byte, gated bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.add1(message{packet: packet}, gated)
}

func (r *replay) add1(m message, gated bool) {
	r.seq++
	// The client may recycle what it gets: keep copies.
	m.seq, m.packet = r.seq, keep(r.number(m.packet, r.seq))
	if m.data != nil {
		m.data = keep(m.data)
	}
	r.msgs = append(r.msgs, m)
	r.unacked += m.size()
	r.kept += m.size()
	if r.ackless() {
		r.forgetPastLimit()
	}
	if r.client != nil {
		r.output(m, gated)
	}
}

// forgetPastLimit acknowledges the oldest messages until at most limit
// bytes are unacknowledged. r.mu is held.
func (r *replay) forgetPastLimit() {
	seq, over := r.acked, r.unacked-r.limit
	first := r.seq + 1 - uint64(len(r.msgs))
	for over > 0 {
		seq++
		over -= r.msgs[seq-first].size()
	}
	r.ack1(seq)
}

// ackless reports whether output goes to a client that is not read (see
// unread). r.mu is held.
func (r *replay) ackless() bool { return r.client != nil && r.unread.Load() > 0 }

// unreadClient says that the client is not read until the returned
// function is called (see unread).
func (r *replay) unreadClient() (read func()) {
	r.unread.Add(1)
	r.signal()
	return func() { r.unread.Add(-1) }
}

// output hands m to the client; gated, the next output waits until it
// is written. r.mu is held.
func (r *replay) output(m message, gated bool) {
	var written func()
	if gated {
		r.busy.Store(true)
		gen := r.gen.Load()
		written = func() { r.written(gen) }
	}
	m.send(r.client, written)
}

// number puts "seq": n into a packet: it ends with "}" and the tail.
func (r *replay) number(packet []byte, n uint64) []byte {
	cut := len(packet) - r.tailLen - 1
	tail := string(packet[cut+1:])
	b := append(packet[:cut], `,"seq":`...)
	b = strconv.AppendUint(b, n, 10)
	b = append(b, '}')
	return append(b, tail...)
}

// written is called back once the client's transport has written a
// message, maybe from within Client.Output.
func (r *replay) written(gen uint64) {
	if gen == r.gen.Load() && r.busy.Swap(false) {
		r.signal()
	}
}

// signal wakes a waiting send.
func (r *replay) signal() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// ack forgets what the client has shown, up to seq, but the repaint.
func (r *replay) ack(seq uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ack1(seq)
}

func (r *replay) ack1(seq uint64) {
	seq = min(seq, r.seq)
	if seq <= r.acked {
		return
	}
	first := r.seq + 1 - uint64(len(r.msgs))
	for n := max(r.acked+1, first); n <= seq; n++ {
		r.unacked -= r.msgs[n-first].size()
	}
	r.acked = seq
	drop := 0
	for drop < len(r.msgs) && r.msgs[drop].seq <= seq && r.kept-r.msgs[drop].size() >= repaintBytes {
		r.kept -= r.msgs[drop].size()
		drop++
	}
	clear(r.msgs[:drop])
	r.msgs = r.msgs[drop:]
	r.signal()
}

// detach lets the client go: output is kept, not sent, until attach.
func (r *replay) detach() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.client = nil
	r.gen.Add(1)
	r.busy.Store(false)
	r.signal()
}

// attach gives the session to c, which has shown the output up to last
// (0: none it still has): ready is called first, with whether what is
// kept starts later than the client needs, then every kept message after
// last is sent, in order, then live output. It returns the bytes
// replayed.
func (r *replay) attach(c Client, last uint64, ready func(partial bool)) (replayed int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.client = c
	r.gen.Add(1)
	r.busy.Store(false)
	if last > 0 {
		r.ack1(last)
	}
	first := r.seq + 1 - uint64(len(r.msgs))
	ready(first > last+1)
	for i, m := range r.msgs {
		if m.seq > last {
			replayed += m.size()
			r.output(m, i == len(r.msgs)-1)
		}
	}
	r.signal()
	return replayed
}
