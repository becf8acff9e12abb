package server

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zishang520/socket.io/servers/engine/v3"
	"github.com/zishang520/socket.io/servers/engine/v3/transports"
	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"

	"github.com/alfresco-ssh/alfresco-ssh/sshbridge"
	"github.com/alfresco-ssh/alfresco-ssh/terminal"
)

const namespace = "/ssh"

// backstopDelay is how long a socket that was told to disconnect may keep
// its connection before the server closes it.
const backstopDelay = 2 * time.Second

func (s *Server) newSocketIO() *socket.Server {
	opts := socket.DefaultServerOptions()
	opts.SetServeClient(false)
	opts.SetPingInterval(s.cfg.PingInterval)
	opts.SetPingTimeout(s.cfg.PingTimeout)
	opts.SetMaxHttpBufferSize(s.cfg.MaxMessageBytes)
	opts.SetTransports(s.transports())
	// Origins are checked by the HTTP route (checkOrigin), which also knows
	// trusted proxies; the library's own websocket check compares Origin
	// with Host only, which fails behind a proxy, so it lets all through.
	opts.SetCors(&types.Cors{Origin: func(string) bool { return true }})
	opts.SetAllowRequest(func(*types.HttpContext) error {
		if s.isClosing() {
			return terminal.ErrShutdown
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
			done := s.conns.add()
			conn.Once("close", func(...any) { done() })
			if conn.ReadyState() == "closed" {
				done() // closed before the listener was in place
			}
		}
	})
	return io
}

// attach wires a new socket to a new terminal. Every handler is
// registered here, synchronously, so no early event is lost.
func (s *Server) attach(sock *socket.Socket) {
	defer s.gate.release(sock.Conn().Id()) // the handlers are in place
	client := sock.Handshake().Address
	if r := sock.Request(); r != nil && r.Request() != nil {
		client = s.clientIP(r.Request())
	}
	log := s.log.With("socket", string(sock.Id()), "client", client)
	c := &socketClient{sock: sock, node: s.cfg.NodeName}
	t := s.terms.Open(c, client, log)
	if t.State() == terminal.Ended {
		return
	}
	onSessionEvents(sock, log, t) // start-session, resume-session, ssh-ack
	on(sock, log, "ssh-input", decodeInput, t.Input)
	s.gate.pauseInput(sock.Conn().Id(), t, s.cfg.PingTimeout/2)
	on(sock, log, "resize", decodeResize, t.Resize)
	sock.On("timeout", func(...any) { t.Stop(terminal.ErrInactive) })
	// The terminal's own goroutine disconnects the socket when it ends or
	// is taken over (socketClient.Close), and the library may call these
	// handlers within that call: Stop, which waits for that goroutine to
	// take the event, must not run on it.
	gone := func(...any) { go t.Stop(terminal.ErrClientGone) }
	sock.On("disconnect", gone)
	// The engine connection can close without a disconnect event reaching
	// the socket; end the terminal then too.
	conn := sock.Conn()
	conn.Once("close", gone)
	// An upgrade swaps transports; never let a send callback lost in the
	// swap stall the output.
	conn.On("upgrade", func(...any) { c.unstall() })
	if conn.ReadyState() != "open" {
		// Closed before the listener above was in place.
		t.Stop(terminal.ErrClientGone)
		sock.Disconnect(false)
		return
	}
	log.Debug("socket connected")
}

// on registers the handler of an event whose payload decode checks and
// converts; do gets the value.
func on[V any](sock *socket.Socket, log *slog.Logger, event string, decode func([]any) (V, error), do func(V)) {
	sock.On(event, func(args ...any) {
		v, err := decode(args)
		if err != nil {
			log.Debug("rejected "+event, "err", err)
			return
		}
		do(v)
	})
}

// admitSession applies the login back-off before a dial (terminal.Admit):
// see admit and endLogin.
func (s *Server) admitSession(ctx context.Context, client string, target sshbridge.Target) (func(error), error) {
	login, err := s.admit(ctx, client, target)
	if err != nil {
		return nil, err
	}
	return func(err error) { s.endLogin(login, dialOutcome(err)) }, nil
}

// outputHead and outputTail frame the payload of an ssh-output packet of
// the namespace, which terminals write directly; binaryHead starts the
// header of one with an attachment (a BINARY_EVENT with one attachment).
const (
	outputHead = "2" + namespace + `,["ssh-output",`
	binaryHead = "51-" + namespace + `,["ssh-output",`
	outputTail = "]"
)

// socketClient adapts a Socket.IO socket to terminal.Client.
type socketClient struct {
	// mu keeps each message's packets together on the connection: a
	// binary message's header and attachment must not have another
	// message between them.
	mu   sync.Mutex
	sock *socket.Socket
	// written is the terminal's send callback (a func()), called again
	// when an upgrade may have lost it.
	written atomic.Value
	node    string // Config.NodeName
}

// Output writes the packet to the engine connection. On a connection that
// has been a websocket from its start, the send callback comes once the
// transport has copied and written the packet, so the packet goes back
// to terminal.Recycle then. Not on one that began as long-polling: the
// upgrade check's NOOP drain can fire a callback before its packet is
// written (see serialPolling), and the engine pairs callbacks with
// writes by order ever after.
func (c *socketClient) Output(packet []byte, written func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	conn := c.sock.Conn()
	t := conn.Transport()
	recycle := !conn.Upgraded() && t != nil && t.Name() == transports.WEBSOCKET
	var done func(transports.Transport)
	switch {
	case recycle:
		done = func(transports.Transport) {
			terminal.Recycle(packet)
			if written != nil {
				written()
			}
		}
	case written != nil:
		done = func(transports.Transport) { written() }
	}
	if written != nil {
		c.written.Store(written)
	}
	conn.Write(types.NewStringBuffer(packet), nil, done)
}

// OutputBinary writes the header of a binary ssh-output message and its
// attachment. Unlike Output's, its send callback is not the engine's: the
// engine pairs callbacks with packets in a way that races with its own
// flush when the transport turns writable, and a callback that lost that
// race waits for the next packet (a ping, seconds later) while the
// terminal's output waits for it. Writing the header just before the
// attachment hit that race often. The attachment calls written instead
// once the engine has encoded (copied) it, just before writing it.
func (c *socketClient) OutputBinary(head, data []byte, written func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if written != nil {
		c.written.Store(written)
	}
	conn := c.sock.Conn()
	conn.Write(types.NewStringBuffer(head), nil, nil)
	conn.Write(&attachment{Reader: bytes.NewReader(data), data: data, written: written}, nil, nil)
}

// attachment is a binary message's data as the engine takes it: the
// engine closes a packet's data once it has encoded it.
type attachment struct {
	*bytes.Reader
	data    []byte
	written func()
	once    sync.Once
}

// Close recycles the data and lets the terminal's next output go.
func (a *attachment) Close() error {
	a.once.Do(func() {
		terminal.Recycle(a.data)
		if a.written != nil {
			a.written()
		}
	})
	return nil
}

func (c *socketClient) unstall() {
	if written, ok := c.written.Load().(func()); ok {
		written()
	}
}

func (c *socketClient) Ready(r terminal.Ready) {
	payload := map[string]any{"ready": true}
	if r.FilesToken != "" {
		payload["files_token"] = r.FilesToken
	}
	resumeFields(payload, r)
	if r.ResumeToken != "" && c.node != "" {
		payload["node"] = c.node
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sock.Emit("connection-ready", payload)
}

// Close disconnects the socket; a client that does not leave is cut off
// after backstopDelay.
func (c *socketClient) Close() {
	c.mu.Lock()
	c.sock.Disconnect(false)
	c.mu.Unlock()
	conn := c.sock.Conn()
	time.AfterFunc(backstopDelay, func() { conn.Close(false) })
}
