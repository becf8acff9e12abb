package terminal

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/alfresco-ssh/alfresco-ssh/credstore"
	"github.com/alfresco-ssh/alfresco-ssh/sshbridge"
)

// Client is the browser side of a terminal; package server adapts a
// Socket.IO socket to it. Its methods must not block (a Socket.IO emit
// queues) and may be called from the terminal's goroutines concurrently.
// They must not call the Terminal back in the same goroutine either: Stop
// waits for the owner goroutine, which may be the one calling Close, so
// an adapter whose transport reports a disconnect within Close stops the
// terminal from a goroutine of its own.
type Client interface {
	// Output sends one ssh-output packet, framed with Config.OutputHead
	// and OutputTail, and calls written, when not nil, once the transport
	// has written it: the terminal sends its next output only then.
	// written may also be called when a transport change may have lost
	// the callback; extra calls are harmless.
	Output(packet []byte, written func())
	// OutputBinary sends one ssh-output message whose output is data,
	// as an attachment: head is its header, framed with Config.BinaryHead
	// and OutputTail. written is as for Output; the two never interleave
	// with other messages. data may be recycled once written is called
	// (Recycle).
	OutputBinary(head, data []byte, written func())
	// Ready sends connection-ready.
	Ready(Ready)
	// Close disconnects the client after what was sent.
	Close()
}

// Ready is what connection-ready carries besides "ready": true.
type Ready struct {
	FilesToken string // with Config.FilesTokens
	// ResumeToken, for a resumable terminal, takes the session back
	// (Resume); Resumed says this is a resume, Partial that the output
	// kept did not reach back to what the client asked for.
	ResumeToken      string
	Resumed, Partial bool
}

// State is where a terminal is in its life; see the package doc.
type State int32

// The states, in order.
const (
	Waiting State = iota
	Starting
	Running
	Ending
	Ended
)

func (s State) String() string {
	switch s {
	case Waiting:
		return "waiting"
	case Starting:
		return "starting"
	case Running:
		return "running"
	case Ending:
		return "ending"
	}
	return "ended"
}

// Terminal is one client's terminal. Its methods are safe for concurrent
// use and return at once; the owner goroutine acts on them in order.
type Terminal struct {
	m      *Manager
	id     string
	client Client
	addr   string // the client's address
	// log is set by the owner once dialled (then read by the helpers it
	// starts, and by Input once it has seen sess).
	log    *slog.Logger
	events chan event
	done   chan struct{} // closed when Ended
	// gate holds a token while an output packet is on its way to the
	// client; written takes it back. Output that arrives meanwhile waits
	// in the SSH channel and goes out coalesced.
	gate    chan struct{}
	written func()

	// Read from any goroutine.
	state      atomic.Int32
	sess       atomic.Pointer[sshbridge.Session] // set once Running
	meta       atomic.Pointer[meta]
	lastActive atomic.Int64 // Unix nanoseconds of the last input or output
	bytesIn    atomic.Uint64
	bytesOut   atomic.Uint64
	input      inputQueue

	// filesKey is the hash of the files token; guarded by m.mu.
	filesKey *[32]byte

	// Owned by the owner goroutine.
	size       sshbridge.WindowSize
	cancel     context.CancelCauseFunc // of the session's context, once Starting
	reason     error                   // why it ends, once decided
	ending     bool                    // reason is decided
	pumps      int                     // output pumps running
	slot       func()                  // Config.Connect's; set before run
	borrowed   error                   // Config.Connect's refusal, for a terminal let in to resume only (borrow)
	startTimer *time.Timer             // StartTimeout's; set before run
	idle       *time.Timer
	lifetime   *time.Timer
	served     bool // sshbridge.Serve has run
	chClosed   bool // sshbridge.Serve has returned: the session channel closed
	// eof: the shell's output ended, and whether it exited or the
	// connection was lost waits for the channel's close (eofWait bounds it).
	eof     bool
	eofWait *time.Timer
	moveOn  bool         // the owner continues on a fresh goroutine
	rs      *resumeState // a resumable terminal's (resume.go)
	binary  bool         // StartOptions.Binary; set before the pumps start
	ka      keepalive
	link    link
}

// meta is what is known of the session, set by the owner as it learns it.
type meta struct {
	target, user, auth, hostKey string
	started                     time.Time
	connect                     time.Duration // the SSH dial's time
}

type eventKind uint8

const (
	evStart        eventKind = iota // text: the credentials id
	evResize                        // size
	evStop                          // err
	evDialed                        // dial
	evPumped                        // err, stdout: a pump ended
	evIdle                          // the idle timer fired
	evNotice                        // text
	evEOFWait                       // the wait for the channel's close after its end of output is over
	evStartTimeout                  // StartTimeout has passed since Open
	evResume                        // text: the token, seq
	evAttach                        // from, seq
	evExpire                        // seq: the detachment
	evKeepalive                     // the keepalive timer fired
	evProbed                        // err
)

// event is a message to the owner goroutine.
type event struct {
	kind   eventKind
	stdout bool
	size   sshbridge.WindowSize
	err    error
	text   string
	dial   *dialResult
	from   *Terminal // whose client sent it
	seq    uint64
	start  StartOptions
}

func newTerminal(m *Manager, c Client, addr string, log *slog.Logger) *Terminal {
	t := &Terminal{
		m:      m,
		id:     randomID(),
		client: c,
		addr:   addr,
		log:    log,
		events: make(chan event, 1),
		done:   make(chan struct{}),
		gate:   make(chan struct{}, 1),
		size:   sshbridge.DefaultWindowSize,
	}
	t.written = t.releaseGate
	return t
}

// ID returns the terminal's id, unique on this node.
func (t *Terminal) ID() string { return t.id }

// State returns the terminal's state.
func (t *Terminal) State() State { return State(t.state.Load()) }

// Done is closed when the terminal has ended.
func (t *Terminal) Done() <-chan struct{} { return t.done }

// Session returns the SSH session of a running terminal, for SFTP on the
// same connection (package files); nil before the shell is up. Closing it
// ends the terminal.
func (t *Terminal) Session() *sshbridge.Session { return t.sess.Load() }

// Touch counts as activity for the idle timeout (a file transfer).
func (t *Terminal) Touch() { t.lastActive.Store(time.Now().UnixNano()) }

// Info describes the terminal.
func (t *Terminal) Info() Info {
	info := Info{
		ID:       t.id,
		Client:   t.clientAddr(),
		BytesIn:  t.bytesIn.Load(),
		BytesOut: t.bytesOut.Load(),
		State:    t.State(),
		Active:   time.Unix(0, t.lastActive.Load()),
	}
	if md := t.meta.Load(); md != nil {
		info.Target, info.User, info.Auth, info.HostKey, info.Started = md.target, md.user, md.auth, md.hostKey, md.started
		info.Connect = md.connect
	}
	return info
}

// Start starts a session with the credentials id (start-session). A
// second start is ignored. An empty id (a malformed start-session) fails
// as unknown credentials do.
func (t *Terminal) Start(id string) { t.StartWith(id, StartOptions{}) }

// StartOptions are a client's opt-ins to the extensions of start-session.
type StartOptions struct {
	// Resume: the session survives the client's leaving (resume.go);
	// without Config.ResumeWindow it is ignored.
	Resume bool
	// Binary: large output goes to Client.OutputBinary as the bytes the
	// remote sent, not escaped into text (see copyOutput).
	Binary bool
}

// StartWith is Start with the client's opt-ins.
func (t *Terminal) StartWith(id string, o StartOptions) {
	t.post(event{kind: evStart, text: id, start: o})
}

// Resize sets the PTY's size, in order with Input; before the shell is
// up, it is opened at the last size given.
func (t *Terminal) Resize(size sshbridge.WindowSize) {
	t, ok := t.route()
	if !ok {
		return
	}
	if sess := t.sess.Load(); sess != nil {
		t.queue(sess, inputItem{size: &size})
		return
	}
	t.post(event{kind: evResize, size: size})
}

// Stop ends the terminal for reason (ErrClientGone, ErrInactive, ...).
// The first reason wins.
func (t *Terminal) Stop(reason error) {
	if errors.Is(reason, ErrClientGone) {
		t.link.gone.Store(true)
	}
	h, _ := t.route()
	h.post(event{kind: evStop, err: reason, from: t})
}

// post hands an event to the owner goroutine; after the end it is
// dropped. It reports whether the event was delivered.
func (t *Terminal) post(e event) bool {
	select {
	case t.events <- e:
		return true
	case <-t.done:
		return false
	}
}

// run is the owner goroutine: it handles events until the terminal ends.
// While the shell runs, sshbridge.Serve handles them, between answering
// the SSH server. Once the shell is up, the owner moves to a fresh
// goroutine: getting there (logging, the connection-ready emit) grew its
// stack, and the goroutines of a running terminal should hold small
// stacks, as thousands of them wait.
func (t *Terminal) run() {
	for t.State() != Ended {
		if t.moveOn {
			t.moveOn = false
			go t.run()
			return
		}
		if sess := t.sess.Load(); sess != nil && !t.served {
			t.served = true
			sshbridge.Serve(sess, t.events, t.handle)
			t.channelClosed()
			continue
		}
		t.handle(<-t.events)
	}
}

func (t *Terminal) handle(e event) {
	if t.State() == Ended {
		return
	}
	switch e.kind {
	case evStart:
		if t.State() == Waiting {
			t.binary = e.start.Binary
		}
		t.optIn(e.start.Resume, e.text)
		t.start(e.text)
	case evResize:
		t.resize(e.size)
	case evStop:
		t.stopFrom(e.from, e.err)
	case evDialed:
		t.dialed(e.dial)
	case evPumped:
		t.pumped(e.stdout, e.err)
	case evIdle:
		t.checkIdle()
	case evNotice:
		t.notice(e.text)
	case evEOFWait:
		t.decideEOF()
	case evStartTimeout:
		if t.State() == Waiting {
			t.stop(ErrStartTimeout)
		}
	case evResume:
		t.resumeInto(e.text, e.seq)
	case evAttach:
		t.attach(e.from, e.seq)
	case evExpire:
		t.expire(e.seq)
	case evKeepalive:
		t.probeTick()
	case evProbed:
		t.probed(e.err)
	}
}

func (t *Terminal) setState(s State) { t.state.Store(int32(s)) }

func (t *Terminal) start(id string) {
	if t.State() != Waiting {
		t.log.Debug("ignored second start-session")
		return
	}
	if t.borrowed != nil {
		t.finish(t.borrowed) // let in to resume only
		return
	}
	t.setState(Starting)
	if !t.m.mayStart() {
		t.finish(ErrShutdown)
		return
	}
	if id == "" {
		t.finish(ErrNoCredentials)
		return
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	t.cancel = cancel
	go t.dial(ctx, id, t.size)
}

// resize takes a size given before the shell was up.
func (t *Terminal) resize(size sshbridge.WindowSize) {
	t.size = size
	if sess := t.sess.Load(); sess != nil && t.State() == Running {
		t.queue(sess, inputItem{size: &size})
	}
}

// stop decides the end: a dial is cancelled and a running session closed;
// the pumps then report, and the terminal finishes. On an Ending terminal
// the first reason stays, but the pumps stop waiting to send what they
// hold: a client that takes no more output (or a detached one's full
// replay) must not keep the terminal from its end.
func (t *Terminal) stop(reason error) {
	if t.State() == Waiting {
		t.finish(reason)
		return
	}
	if !t.ending {
		t.ending, t.reason = true, reason
	}
	t.cancel(reason)
	if sess := t.sess.Load(); sess != nil {
		t.setState(Ending)
		sess.Close()
	}
}

// dialResult is what the dial goroutine learnt.
type dialResult struct {
	ctx  context.Context
	sess *sshbridge.Session
	err  error
	size sshbridge.WindowSize // the PTY's size
	log  *slog.Logger
	meta meta
}

// dial takes the credentials, applies the limits and the login back-off,
// and opens the SSH session, on a goroutine of its own (the SSH handshake
// grows its stack, which ends with it); it reports to the owner.
func (t *Terminal) dial(ctx context.Context, id string, size sshbridge.WindowSize) {
	r := &dialResult{ctx: ctx, size: size, log: t.log}
	r.sess, r.err = t.open(ctx, id, r)
	if !t.post(event{kind: evDialed, dial: r}) {
		// Unreachable: the owner waits for the dial before it ends.
		if r.sess != nil {
			r.sess.Close()
		}
	}
}

func (t *Terminal) open(ctx context.Context, id string, r *dialResult) (*sshbridge.Session, error) {
	cfg := &t.m.cfg
	r.log = t.log.With("id", shortID(id))
	target, err := cfg.Credentials.Take(ctx, id)
	if errors.Is(err, credstore.ErrUnavailable) {
		return nil, err
	}
	if err != nil {
		return nil, ErrNoCredentials
	}
	defer clear(target.PrivateKey)
	r.meta = meta{target: target.Addr(), user: target.User}
	r.log = r.log.With("host", target.Host, "port", target.Port, "user", target.User)
	var dialed func(error)
	if cfg.Admit != nil {
		if dialed, err = cfg.Admit(ctx, t.addr, target); err != nil {
			return nil, err
		}
	}
	begin := time.Now()
	sess, err := sshbridge.Open(ctx, cfg.SSH, target, r.size)
	r.meta.connect = time.Since(begin)
	if dialed != nil {
		dialed(err)
	}
	if err != nil {
		if cause := context.Cause(ctx); cause != nil {
			return nil, cause
		}
	}
	return sess, err
}

// dialed takes the dial's outcome: the shell runs, unless the dial failed
// or the terminal was stopped meanwhile.
func (t *Terminal) dialed(r *dialResult) {
	t.log = r.log
	md := r.meta
	if r.err == nil {
		if cause := context.Cause(r.ctx); cause != nil {
			r.sess.Close()
			r.err = cause
		}
	}
	if r.err == nil {
		md.auth, md.hostKey, md.started = r.sess.Auth(), r.sess.HostKey(), time.Now()
	}
	t.meta.Store(&md)
	if r.err != nil {
		t.finish(r.err)
		return
	}
	t.sess.Store(r.sess)
	t.setState(Running)
	if t.size != r.size {
		t.resize(t.size)
	}
	t.log.Info("terminal session started", "session", t.id)
	var ready Ready
	if t.m.cfg.FilesTokens {
		ready.FilesToken = t.m.newFilesToken(t)
	}
	t.resumeReady(&ready)
	t.observe(Observer.Started, "")
	t.client.Ready(ready)
	t.Touch()
	if limit := t.m.cfg.IdleTimeout; limit > 0 {
		t.idle = time.AfterFunc(limit, func() { t.post(event{kind: evIdle}) })
	}
	if d := t.m.cfg.MaxSessionDuration; d > 0 {
		t.lifetime = time.AfterFunc(d, func() { t.Stop(ErrLifetime) })
	}
	t.startKeepalive()
	t.pumps = 2
	t.moveOn = true
	go t.pump(r.ctx, r.sess, true)
	go t.pump(r.ctx, r.sess.Stderr(), false)
}

// checkIdle ends the terminal once neither input nor output has passed
// for the idle timeout, and otherwise looks again when it could have.
func (t *Terminal) checkIdle() {
	limit := t.m.cfg.IdleTimeout
	idle := time.Since(time.Unix(0, t.lastActive.Load()))
	if idle >= limit {
		t.stop(ErrInactive)
		return
	}
	t.idle.Reset(limit - idle)
}

// pumped counts a pump that ended: the standard output's end (the shell
// ended, or the session was closed) closes the session, which ends the
// other; once both have sent all they hold, the terminal finishes.
func (t *Terminal) pumped(stdout bool, err error) {
	t.pumps--
	if stdout {
		t.setState(Ending)
		if !t.ending && err == nil {
			// The end of output: the channel's close follows the exit
			// status, if there is one; decide then.
			t.ending, t.eof = true, true
			if t.chClosed {
				t.decideEOF()
				return
			}
			t.eofWait = time.AfterFunc(eofWait, func() { t.post(event{kind: evEOFWait}) })
			return
		}
		if !t.ending {
			t.ending, t.reason = true, err
		}
		t.sess.Load().Close()
	}
	if t.pumps == 0 && !t.eof {
		t.finish(t.reason)
	}
}

// eofWait bounds the wait for the session channel's close after the end
// of the shell's output.
const eofWait = 5 * time.Second

// channelClosed notes that the session channel has closed: the remote
// closed it, the connection ended, or the session was closed.
func (t *Terminal) channelClosed() {
	t.chClosed = true
	if t.eof {
		t.decideEOF()
	}
}

// decideEOF ends a terminal whose output has ended: a shell that sent its
// exit status exited; without one, the server closed the connection.
func (t *Terminal) decideEOF() {
	if !t.eof {
		return
	}
	t.eof = false
	if t.eofWait != nil {
		t.eofWait.Stop()
	}
	sess := t.sess.Load()
	if !sess.Exited() {
		t.reason = ErrConnectionLost
	}
	sess.Close()
	if t.pumps == 0 {
		t.finish(t.reason)
	}
}

// notice shows text as a yellow line, if the shell runs.
func (t *Terminal) notice(text string) {
	if t.State() != Running {
		return
	}
	t.output(t.m.packet("\r\n\x1b[93m"+text+"\x1b[0m\r\n", ""))
}

// finish ends the terminal: the SSH session and the timers stop, the
// client gets its closing message (unless it left) and is disconnected,
// the observers are told and the terminal is forgotten.
func (t *Terminal) finish(reason error) {
	was := t.State()
	t.setState(Ended)
	if t.cancel != nil {
		t.cancel(reason)
	}
	if sess := t.sess.Load(); sess != nil {
		sess.Close()
	}
	if t.idle != nil {
		t.idle.Stop()
	}
	if t.lifetime != nil {
		t.lifetime.Stop()
	}
	if t.startTimer != nil {
		t.startTimer.Stop()
	}
	t.stopKeepalive()
	if t.slot != nil {
		t.slot()
	}
	t.m.forget(t)
	t.endResume()
	r := classify(reason)
	if was < Running && r == ReasonLost {
		r = ReasonError // no connection to lose yet
	}
	t.logEnd(reason, r)
	switch {
	case was >= Running:
		t.observe(Observer.Ended, r)
	case was == Starting:
		t.observe(Observer.Failed, r)
	}
	if !errors.Is(reason, ErrClientGone) {
		t.closeClient(reason)
	}
	close(t.done)
}

// refuse ends a terminal that never ran (Open after Shutdown).
func (t *Terminal) refuse(reason error) {
	t.setState(Ended)
	t.logEnd(reason, classify(reason))
	t.closeClient(reason)
	close(t.done)
}

// logEnd logs the end of the terminal: the one log line of every ending,
// failures to start included. A shell that exited has no error to show.
func (t *Terminal) logEnd(reason error, r Reason) {
	if t.m.AtCapacity(reason) {
		return // logged once per interval, not per terminal
	}
	if reason == nil {
		t.log.Info("terminal ended", "session", t.id, "reason", string(r))
		return
	}
	t.log.Info("terminal ended", "session", t.id, "reason", string(r), "err", reason)
}

// closeClient sends the red closing message and disconnects the client.
func (t *Terminal) closeClient(reason error) {
	c := t.current()
	if c == nil {
		return // detached
	}
	t.output(t.m.closingPacket(reason))
	c.Close()
}

// closingPacket is the red closing message for reason, with the timeout
// field that tells an idle timeout.
func (m *Manager) closingPacket(reason error) []byte {
	timeout := `,"timeout":false`
	if errors.Is(reason, ErrInactive) {
		timeout = `,"timeout":true`
	}
	return m.packet("\r\n\x1b[91m"+Text(reason)+"\x1b[0m\r\n", timeout)
}

// observe tells every observer, with the terminal's Info.
func (t *Terminal) observe(call func(Observer, Info), reason Reason) {
	if len(t.m.cfg.Observers) == 0 {
		return
	}
	info := t.Info()
	info.Reason = reason
	for _, o := range t.m.cfg.Observers {
		call(o, info)
	}
}

// shortID is the part of a credentials id that may appear in logs.
func shortID(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}
