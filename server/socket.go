package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zishang520/socket.io/servers/engine/v3"
	"github.com/zishang520/socket.io/servers/engine/v3/transports"
	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"

	"github.com/alfresco-ssh/alfresco-ssh/policy"
	"github.com/alfresco-ssh/alfresco-ssh/sshbridge"
)

const namespace = "/ssh"

// Reasons a terminal ends, besides the remote shell ending.
var (
	errClientGone = errors.New("client disconnected")
	errInactive   = errors.New("closed for inactivity")
	errShutdown   = errors.New("server shutting down")
	errNoSession  = errors.New("credentials unknown, expired or already used")
	errLifetime   = errors.New("maximum session duration reached")
)

// backstopDelay is how long a socket that was told to disconnect may keep
// its connection before the server closes it.
const backstopDelay = 2 * time.Second

func (s *Server) newSocketIO() *socket.Server {
	opts := socket.DefaultServerOptions()
	opts.SetServeClient(false)
	opts.SetPingInterval(s.cfg.PingInterval)
	opts.SetPingTimeout(s.cfg.PingTimeout)
	opts.SetMaxHttpBufferSize(s.cfg.MaxMessageBytes)
	// Polling with serialized writes: see serialPolling.
	opts.SetTransports(types.NewSet[transports.TransportCtor](&serialPollingBuilder{}, engine.WebSocket))
	// Origins are checked by the HTTP route (checkOrigin), which also knows
	// trusted proxies; the library's own websocket check compares Origin
	// with Host only, which fails behind a proxy, so it lets all through.
	opts.SetCors(&types.Cors{Origin: func(string) bool { return true }})
	opts.SetAllowRequest(func(*types.HttpContext) error {
		if s.isClosing() {
			return errShutdown
		}
		return nil
	})
	io := socket.NewServer(nil, opts)
	io.Of(namespace, nil).On("connection", func(args ...any) {
		if sock, ok := args[0].(*socket.Socket); ok {
			s.attach(sock)
		}
	})
	io.ServeHandler(nil) // creates the engine
	io.Engine().On("connection", func(args ...any) {
		if conn, ok := args[0].(engine.Socket); ok {
			s.gate.install(conn)
			watchUpgrade(conn)
		}
	})
	return io
}

// terminal is the state of one Socket.IO socket of the /ssh namespace: at
// most one SSH session, started by start-session.
type terminal struct {
	srv    *Server
	sock   *socket.Socket
	client string // client address, for the per-client limits
	log    *slog.Logger
	// gate holds a token while an output message is on its way to the
	// browser; the engine's send callback takes it back. Output that
	// arrives meanwhile waits in the SSH channel and goes out coalesced.
	gate chan struct{}

	// lastActive is when input or output last passed (Unix nanoseconds).
	lastActive atomic.Int64

	mu      sync.Mutex
	size    sshbridge.WindowSize
	started bool
	ended   bool
	sess    *sshbridge.Session
	cancel  context.CancelCauseFunc // set once started
}

// attach wires a new socket. Every handler is registered here,
// synchronously, so no early event is lost.
func (s *Server) attach(sock *socket.Socket) {
	defer s.gate.release(sock.Conn().Id()) // the handlers are in place
	client := sock.Handshake().Address
	if r := sock.Request(); r != nil && r.Request() != nil {
		client = s.clientIP(r.Request())
	}
	t := &terminal{
		srv:    s,
		sock:   sock,
		client: client,
		log:    s.log.With("socket", string(sock.Id()), "client", client),
		gate:   make(chan struct{}, 1),
		size:   sshbridge.DefaultWindowSize,
	}
	if !s.track(t) {
		t.finish(errShutdown)
		return
	}
	sock.On("start-session", t.onStart)
	sock.On("ssh-input", t.onInput)
	sock.On("resize", t.onResize)
	sock.On("timeout", func(...any) { t.stop(errInactive) })
	sock.On("disconnect", func(...any) { t.stop(errClientGone) })
	// The engine connection can close without a disconnect event reaching
	// the socket; end the session then too.
	conn := sock.Conn()
	conn.Once("close", func(...any) { t.stop(errClientGone) })
	// An upgrade swaps transports; never let a send callback lost in the
	// swap stall the output.
	conn.On("upgrade", func(...any) { t.release() })
	if conn.ReadyState() != "open" {
		// Closed before the listener above was in place.
		t.stop(errClientGone)
		sock.Disconnect(false)
		return
	}
	t.log.Debug("socket connected")
}

func (t *terminal) onStart(args ...any) {
	id, err := decodeStart(args)
	if err != nil {
		t.log.Debug("rejected start-session", "err", err)
		return
	}
	t.mu.Lock()
	if t.started || t.ended {
		t.mu.Unlock()
		t.log.Debug("ignored second start-session")
		return
	}
	t.started = true
	ctx, cancel := context.WithCancelCause(context.Background())
	t.cancel = cancel
	size := t.size
	t.mu.Unlock()

	if !t.srv.beginSession() {
		t.finish(errShutdown)
		return
	}
	target, login, release, err := t.prepare(ctx, id)
	if err != nil {
		t.srv.running.Done()
		t.finish(err)
		return
	}
	log := t.log.With("id", shortID(id), "host", target.Host, "port", target.Port, "user", target.User)
	go func() {
		sess, err := t.dial(ctx, log, target, size, login)
		if err != nil {
			t.finish(err)
			release()
			t.srv.running.Done()
			return
		}
		// The SSH handshake grew this goroutine's stack; the session's
		// life goes on in a new one, with a small stack, and this one ends.
		go func() {
			defer t.srv.running.Done()
			defer release()
			t.finish(t.run(ctx, log, sess, size))
		}()
	}()
}

// prepare takes the credentials and applies the session limits and the
// login back-off before a dial.
func (t *terminal) prepare(ctx context.Context, id string) (target sshbridge.Target, login policy.Attempt, release func(), err error) {
	if target, err = t.srv.store.Take(id); err != nil {
		t.log.Info("start-session with unknown credentials", "id", shortID(id))
		return target, nil, nil, errNoSession
	}
	if login, release, err = t.srv.admit(ctx, t.client, target); err != nil {
		t.log.Info("session refused", "id", shortID(id), "reason", err)
	}
	return target, login, release, err
}

// dial opens the SSH session and ends login with what it says about the
// credentials; the error says why it could not.
func (t *terminal) dial(ctx context.Context, log *slog.Logger, target sshbridge.Target, size sshbridge.WindowSize, login policy.Attempt) (*sshbridge.Session, error) {
	sess, err := sshbridge.Dial(ctx, t.srv.cfg.SSH, target, size)
	clear(target.PrivateKey)
	t.srv.endLogin(login, dialOutcome(err))
	if err != nil {
		if cause := context.Cause(ctx); cause != nil {
			return nil, cause
		}
		log.Info("ssh connection failed", "err", err)
		return nil, err
	}
	return sess, nil
}

// run streams the session's output until it ends, and returns why it
// ended. size is the PTY size the session was opened with.
func (t *terminal) run(ctx context.Context, log *slog.Logger, sess *sshbridge.Session, size sshbridge.WindowSize) error {
	defer sess.Close()
	stop := context.AfterFunc(ctx, func() { sess.Close() })
	defer stop()
	defer t.watchIdle()()
	if d := t.srv.cfg.MaxSessionDuration; d > 0 {
		lifetime := time.AfterFunc(d, func() { t.stop(errLifetime) })
		defer lifetime.Stop()
	}

	t.mu.Lock()
	t.sess = sess
	resize := t.size != size
	size = t.size
	t.mu.Unlock()
	if resize {
		sess.Resize(size)
	}
	log.Info("terminal session started")
	t.emit("connection-ready", map[string]bool{"ready": true})

	var wg sync.WaitGroup
	wg.Go(func() { t.pump(ctx, sess.Stderr()) })
	err := t.pump(ctx, sess)
	sess.Close()
	wg.Wait()
	if cause := context.Cause(ctx); cause != nil {
		return cause
	}
	return err
}

// pump sends what r yields as ssh-output until r ends. The read buffer
// grows while the remote floods and shrinks back when it idles, so an idle
// session holds little memory.
func (t *terminal) pump(ctx context.Context, r io.Reader) error {
	const minBuf, maxBuf = 512, 256 << 10
	var text utf8Stream
	buf := make([]byte, minBuf)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			t.active()
			t.srv.output.Add(uint64(n))
			if msg, ok := outputPacket(text.appendJSON(outputHead(n), buf[:n])); ok {
				if err := t.sendOutput(ctx, msg); err != nil {
					return err
				}
			}
		}
		if err != nil {
			if msg, ok := outputPacket(text.flush(outputHead(0))); ok {
				t.sendOutput(ctx, msg)
			}
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		switch {
		case n == len(buf) && len(buf) < maxBuf:
			buf = make([]byte, 2*len(buf))
		case n < minBuf/2 && len(buf) > minBuf:
			buf = make([]byte, minBuf)
		}
	}
}

// An ssh-output packet of the namespace, written directly: the output is
// escaped in one pass (utf8Stream) between the head and the tail.
const (
	outputPacketHead = "2" + namespace + `,["ssh-output",{"output":"`
	outputPacketTail = `"}]`
)

// outputHead starts a packet with room for about n bytes of output.
func outputHead(n int) []byte {
	b := make([]byte, 0, len(outputPacketHead)+n+n/8+len(outputPacketTail))
	return append(b, outputPacketHead...)
}

// outputPacket ends a packet; ok is false when it holds no output.
func outputPacket(b []byte) (msg []byte, ok bool) {
	if len(b) == len(outputPacketHead) {
		return nil, false
	}
	return append(b, outputPacketTail...), true
}

func (t *terminal) active() { t.lastActive.Store(time.Now().UnixNano()) }

// watchIdle ends the terminal once neither input nor output has passed for
// the idle timeout. It returns the function that stops watching.
func (t *terminal) watchIdle() (stop func()) {
	limit := t.srv.cfg.IdleTimeout
	t.active()
	var (
		mu      sync.Mutex
		timer   *time.Timer
		stopped bool
	)
	check := func() {
		idle := time.Since(time.Unix(0, t.lastActive.Load()))
		if idle >= limit {
			t.stop(errInactive)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if !stopped {
			timer.Reset(limit - idle)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	timer = time.AfterFunc(limit, check)
	return func() {
		mu.Lock()
		defer mu.Unlock()
		stopped = true
		timer.Stop()
	}
}

// sendOutput sends one ssh-output packet once the previous one has been
// written to the browser's transport.
func (t *terminal) sendOutput(ctx context.Context, packet []byte) error {
	select {
	case t.gate <- struct{}{}:
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	t.sock.Conn().Write(types.NewStringBuffer(packet), nil, func(transports.Transport) { t.release() })
	return nil
}

func (t *terminal) release() {
	select {
	case <-t.gate:
	default:
	}
}

// emit sends a small event through the socket.
func (t *terminal) emit(event string, v any) {
	if err := t.sock.Emit(event, v); err != nil {
		t.log.Debug("emit failed", "event", event, "err", err)
	}
}

func (t *terminal) onInput(args ...any) {
	input, err := decodeInput(args)
	if err != nil {
		t.log.Debug("rejected ssh-input", "err", err)
		return
	}
	t.mu.Lock()
	sess := t.sess
	t.mu.Unlock()
	if sess == nil {
		t.log.Debug("dropped ssh-input before the shell is ready")
		return
	}
	t.active()
	// Blocks while the remote does not read: this socket's later events
	// wait, other sockets do not.
	if _, err := io.WriteString(sess, input); err != nil {
		t.log.Debug("write to shell failed", "err", err)
	}
}

func (t *terminal) onResize(args ...any) {
	size, err := decodeResize(args)
	if err != nil {
		t.log.Debug("rejected resize", "err", err)
		return
	}
	t.mu.Lock()
	t.size = size
	sess := t.sess
	t.mu.Unlock()
	if sess != nil {
		if err := sess.Resize(size); err != nil {
			t.log.Debug("resize failed", "err", err)
		}
	}
}

// stop ends the terminal for reason: a running session is cancelled and
// its goroutine reports the ending; otherwise the terminal ends here. Safe
// to call any number of times, from any goroutine.
func (t *terminal) stop(reason error) {
	t.mu.Lock()
	cancel := t.cancel
	t.mu.Unlock()
	if cancel != nil {
		cancel(reason)
		return
	}
	t.finish(reason)
}

// finish tells the browser why the terminal ended (the red closing
// message), disconnects the socket, and forgets the terminal. Only the
// first call does anything.
func (t *terminal) finish(reason error) {
	t.mu.Lock()
	if t.ended {
		t.mu.Unlock()
		return
	}
	t.ended = true
	cancel := t.cancel
	t.mu.Unlock()
	t.srv.untrack(t)
	if cancel != nil {
		cancel(reason)
	}
	t.log.Info("terminal ended", "reason", reason)
	if errors.Is(reason, errClientGone) {
		return
	}
	t.emit("ssh-output", map[string]any{
		"output":  "\r\n\x1b[91m" + closingText(reason) + "\x1b[0m\r\n",
		"timeout": errors.Is(reason, errInactive),
	})
	t.sock.Disconnect(false)
	conn := t.sock.Conn()
	time.AfterFunc(backstopDelay, func() { conn.Close(false) })
}

// closingText is the user's explanation of why the terminal ended.
func closingText(reason error) string {
	var hostKey *sshbridge.HostKeyError
	var denied *policy.TargetDeniedError
	var blocked *policy.LoginRefusedError
	switch {
	case errors.As(reason, &hostKey):
		return "Connection failed: " + hostKey.UserMessage() + "."
	case errors.As(reason, &denied):
		return "Connection refused by the gateway's policy: " + denied.Error() + "."
	case errors.As(reason, &blocked):
		return "Connection refused: " + blocked.Error() + "."
	case errors.Is(reason, policy.ErrTooManySessions):
		return "Connection refused: the gateway has too many sessions, try again later."
	case errors.Is(reason, policy.ErrTooManyClientSessions):
		return "Connection refused: too many sessions from your address."
	case reason == nil:
		return "Connection closed."
	case errors.Is(reason, errInactive):
		return "Session closed after a period of inactivity."
	case errors.Is(reason, errLifetime):
		return "Session closed: the maximum session duration was reached."
	case errors.Is(reason, errShutdown):
		return "The gateway is shutting down. Connection closed."
	case errors.Is(reason, errNoSession):
		return "Could not start the session: the credentials are unknown, expired or already used."
	case errors.Is(reason, sshbridge.ErrAuth):
		return "Connection failed: authentication failed."
	case errors.Is(reason, sshbridge.ErrRefused):
		return "Connection failed: connection refused."
	case errors.Is(reason, sshbridge.ErrHostNotFound):
		return "Connection failed: host not found."
	case errors.Is(reason, sshbridge.ErrUnreachable):
		return "Connection failed: host unreachable."
	case errors.Is(reason, sshbridge.ErrTimeout):
		return "Connection failed: timed out."
	case errors.Is(reason, sshbridge.ErrHostKey):
		return "Connection failed: the host key was rejected."
	case errors.Is(reason, sshbridge.ErrBadKey), errors.Is(reason, sshbridge.ErrKeyEncrypted):
		return "Connection failed: the private key could not be used."
	case errors.Is(reason, sshbridge.ErrHandshake):
		return "Connection failed: SSH handshake failed."
	case errors.Is(reason, sshbridge.ErrSession):
		return "Connection failed: the remote host refused to start a shell."
	}
	return "Connection closed: the connection to the remote host was lost."
}
