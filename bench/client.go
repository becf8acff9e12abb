package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zishang520/socket.io/clients/engine/v3"
	sio "github.com/zishang520/socket.io/clients/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"
	"golang.org/x/crypto/ssh"
)

// prompt is what the sshdtest account's shell prints when it waits for a
// command.
const prompt = "alfresco-test$ "

// terminal is one interactive shell, reached directly or through the gateway.
type terminal interface {
	// send types s into the shell.
	send(s string) error
	// output is what the shell prints.
	output() *stream
	// close ends the session; it does not wait for the remote to notice.
	close()
}

// errEnded says a terminal's output stream has ended.
var errEnded = errors.New("output ended")

// stream is a terminal's output as it arrives. One goroutine at a time
// waits on it (waitFor); the terminal's own goroutine writes to it.
type stream struct {
	mu   sync.Mutex
	buf  []byte
	at   time.Time // arrival of the latest chunk
	err  error     // why the stream ended; nil while it runs
	tap  func(p []byte, at time.Time) (rest []byte, detach bool)
	wake chan struct{} // capacity 1: "something changed"
}

func newStream() *stream { return &stream{wake: make(chan struct{}, 1)} }

// write adds arriving output. With a tap set, the tap consumes it instead;
// when the tap detaches, what it hands back is buffered as usual.
func (s *stream) write(p []byte) {
	now := time.Now()
	s.mu.Lock()
	if s.tap != nil {
		rest, detach := s.tap(p, now)
		if detach {
			s.tap = nil
		}
		p = rest
	}
	s.buf = append(s.buf, p...)
	s.at = now
	s.mu.Unlock()
	s.signal()
}

// end marks the stream as ended with err.
func (s *stream) end(err error) {
	s.mu.Lock()
	if s.err == nil {
		s.err = fmt.Errorf("%w: %w", errEnded, err)
	}
	s.mu.Unlock()
	s.signal()
}

func (s *stream) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// setTap routes arriving output to tap until it detaches; what is buffered
// already is discarded.
func (s *stream) setTap(tap func(p []byte, at time.Time) (rest []byte, detach bool)) {
	s.mu.Lock()
	s.buf = s.buf[:0]
	s.tap = tap
	s.mu.Unlock()
}

// clearTap removes a tap that has not detached itself.
func (s *stream) clearTap() {
	s.mu.Lock()
	s.tap = nil
	s.mu.Unlock()
}

// discard drops what is buffered.
func (s *stream) discard() {
	s.mu.Lock()
	s.buf = s.buf[:0]
	s.mu.Unlock()
}

// waitFor waits until match finds what it wants in the buffered output:
// match returns how many bytes to consume, or -1 to keep waiting. It
// returns the arrival time of the latest chunk at that moment.
func (s *stream) waitFor(ctx context.Context, timeout time.Duration, what string, match func([]byte) int) (time.Time, error) {
	var expired <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		expired = t.C
	}
	for {
		s.mu.Lock()
		if n := match(s.buf); n >= 0 {
			at := s.at
			s.buf = s.buf[:copy(s.buf, s.buf[n:])]
			s.mu.Unlock()
			return at, nil
		}
		err, tail := s.err, s.tailLocked()
		s.mu.Unlock()
		if err != nil {
			return time.Time{}, fmt.Errorf("waiting for %s: %w (last output %q)", what, err, tail)
		}
		select {
		case <-s.wake:
		case <-expired:
			return time.Time{}, fmt.Errorf("waiting for %s: timed out after %v (last output %q)", what, timeout, s.tail())
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		}
	}
}

func (s *stream) tail() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tailLocked()
}

func (s *stream) tailLocked() string {
	b := s.buf
	if len(b) > 120 {
		b = b[len(b)-120:]
	}
	return string(b)
}

// waitForString waits for want and consumes the output through it.
func (s *stream) waitForString(ctx context.Context, timeout time.Duration, want string) (time.Time, error) {
	return s.waitFor(ctx, timeout, fmt.Sprintf("%q", want), func(b []byte) int {
		if i := bytes.Index(b, []byte(want)); i >= 0 {
			return i + len(want)
		}
		return -1
	})
}

// waitForByte waits for c and consumes the output through it.
func (s *stream) waitForByte(ctx context.Context, timeout time.Duration, c byte) (time.Time, error) {
	return s.waitFor(ctx, timeout, fmt.Sprintf("echo of %q", c), func(b []byte) int {
		if i := bytes.IndexByte(b, c); i >= 0 {
			return i + 1
		}
		return -1
	})
}

// login is where and as whom terminals log in.
type login struct {
	host     string
	port     int
	user     string
	password string
	// textOutput: the gateway client takes output as text messages, as
	// old clients do, not as bytes (binary_output), as the stock page does.
	textOutput bool
}

func (l login) addr() string { return net.JoinHostPort(l.host, fmt.Sprint(l.port)) }

// directTerminal is a shell over x/crypto/ssh with the PTY the gateway
// asks for: the floor the gateway is compared with.
type directTerminal struct {
	client *ssh.Client
	sess   *ssh.Session
	stdin  io.WriteCloser
	out    *stream
}

// dialDirect logs in and starts a shell on a PTY, as sshbridge.Dial does.
func dialDirect(ctx context.Context, l login) (*directTerminal, error) {
	d := net.Dialer{}
	conn, err := d.DialContext(ctx, "tcp", l.addr())
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	c, chans, reqs, err := ssh.NewClientConn(conn, l.addr(), &ssh.ClientConfig{
		User:            l.user,
		Auth:            []ssh.AuthMethod{ssh.Password(l.password)},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(),
	})
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("direct ssh: %w", err)
	}
	client := ssh.NewClient(c, chans, reqs)
	t, err := startDirectShell(client)
	if err != nil {
		client.Close()
		return nil, fmt.Errorf("direct ssh: %w", err)
	}
	return t, nil
}

func startDirectShell(client *ssh.Client) (*directTerminal, error) {
	sess, err := client.NewSession()
	if err != nil {
		return nil, err
	}
	modes := ssh.TerminalModes{ssh.ECHO: 1, ssh.TTY_OP_ISPEED: 38400, ssh.TTY_OP_OSPEED: 38400}
	if err := sess.RequestPty("xterm-256color", 24, 80, modes); err != nil {
		return nil, err
	}
	stdin, err := sess.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := sess.StdoutPipe()
	if err != nil {
		return nil, err
	}
	sess.Stderr = io.Discard
	if err := sess.Shell(); err != nil {
		return nil, err
	}
	t := &directTerminal{client: client, sess: sess, stdin: stdin, out: newStream()}
	go func() { // ends when the session ends or the client is closed
		buf := make([]byte, 32<<10)
		for {
			n, err := stdout.Read(buf)
			if n > 0 {
				t.out.write(buf[:n])
			}
			if err != nil {
				t.out.end(err)
				return
			}
		}
	}()
	return t, nil
}

func (t *directTerminal) send(s string) error {
	_, err := io.WriteString(t.stdin, s)
	return err
}

func (t *directTerminal) output() *stream { return t.out }

func (t *directTerminal) close() { t.client.Close() }

// gatewayTerminal is a shell through the gateway: POST /create-credentials,
// then the Go Socket.IO client over websocket only, speaking to /ssh as the
// terminal page does.
type gatewayTerminal struct {
	sock  *sio.Socket
	out   *stream
	ready chan struct{} // closed on connection-ready

	mu         sync.Mutex
	id         string         // credentials id
	connected  time.Time      // when the connect event came
	closing    map[string]any // the closing ssh-output, if any
	reason     string         // disconnect reason, if disconnected
	goneAt     time.Time      // when it was disconnected
	gone       chan struct{}  // closed on disconnect
	connectErr error
}

// httpClient posts credentials; it may keep many connections to the
// gateway alive (the sessions phase and the scale mode post hundreds at once).
var httpClient = &http.Client{Transport: &http.Transport{
	MaxIdleConns:        2000,
	MaxIdleConnsPerHost: 2000,
	IdleConnTimeout:     30 * time.Second,
}, Timeout: 60 * time.Second}

// createCredentials posts a JSON login to the gateway and returns the
// connection id.
func createCredentials(ctx context.Context, base string, l login) (string, error) {
	body, _ := json.Marshal(map[string]any{
		"hostname": l.host, "port": l.port, "username": l.user, "password": l.password,
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/create-credentials", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := httpClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("create-credentials: %w", err)
	}
	defer res.Body.Close()
	var m struct {
		Success bool   `json:"success"`
		ID      string `json:"connection_uuid"`
		Error   string `json:"error"`
	}
	if err := json.NewDecoder(res.Body).Decode(&m); err != nil {
		return "", fmt.Errorf("create-credentials: %s: %w", res.Status, err)
	}
	if res.StatusCode != http.StatusOK || !m.Success || m.ID == "" {
		return "", fmt.Errorf("create-credentials: %s: %s", res.Status, m.Error)
	}
	return m.ID, nil
}

// connectGateway opens a Socket.IO connection to /ssh, sends start-session
// for id (opting in to binary output if asked), and returns at once; ready
// is closed on connection-ready.
func connectGateway(base, id string, connectTimeout time.Duration, binary bool) (*gatewayTerminal, error) {
	opts := sio.DefaultOptions()
	opts.SetTransports(types.NewSet(sio.WebSocket))
	opts.SetForceNew(true) // one engine connection per terminal, as browsers do
	opts.SetReconnection(false)
	opts.SetAutoConnect(false)
	opts.SetTimeout(connectTimeout)
	sock, err := sio.Connect(base+"/ssh", opts)
	if err != nil {
		return nil, err
	}
	t := &gatewayTerminal{sock: sock, id: id, out: newStream(), ready: make(chan struct{}), gone: make(chan struct{})}
	var readyOnce, goneOnce sync.Once
	sock.On("connect", func(...any) {
		t.mu.Lock()
		t.connected = time.Now()
		t.mu.Unlock()
		start := map[string]any{"credentials_uuid": id}
		if binary {
			start["binary_output"] = true
		}
		sock.Emit("start-session", start)
	})
	sock.On("connect_error", func(args ...any) {
		err := fmt.Errorf("socket.io connect error: %v", args)
		t.mu.Lock()
		t.connectErr = err
		t.mu.Unlock()
		t.out.end(err)
		goneOnce.Do(func() { close(t.gone) })
	})
	sock.On("connection-ready", func(...any) {
		readyOnce.Do(func() { close(t.ready) })
	})
	sock.On("ssh-output", func(args ...any) {
		m, _ := args[0].(map[string]any)
		if b, ok := m["output"].(types.BufferInterface); ok {
			t.out.write(b.Bytes())
			return
		}
		text, _ := m["output"].(string)
		if _, isClosing := m["timeout"]; isClosing {
			t.mu.Lock()
			t.closing = m
			t.mu.Unlock()
			t.out.end(errors.New("closing message: " + text))
			return
		}
		t.out.write([]byte(text))
	})
	sock.On("disconnect", func(args ...any) {
		reason := fmt.Sprint(args[0]) // then a description error, nil here
		t.mu.Lock()
		t.reason, t.goneAt = reason, time.Now()
		if len(args) > 1 && args[1] != nil {
			t.reason += fmt.Sprintf(" (%v)", args[1])
		}
		t.mu.Unlock()
		t.out.end(errors.New("disconnected: " + reason))
		goneOnce.Do(func() { close(t.gone) })
	})
	// Open the engine connection first and connect the namespace once it
	// is open: the client's Connect on an opening Manager can send the
	// namespace CONNECT twice (once itself, once from the Manager's "open"
	// event), and the server rightly closes a connection that does.
	mgr := sock.Io()
	var mgrOpen atomic.Bool
	opened := make(chan struct{})
	mgr.On("open", func(...any) {
		if mgrOpen.CompareAndSwap(false, true) {
			close(opened)
		}
	})
	failed := make(chan error, 1)
	mgr.Open(func(err error) {
		if err != nil {
			select { // the Manager can report twice
			case failed <- err:
			default:
			}
		}
	})
	recoverLostOpen(mgr, opened)
	timer := time.NewTimer(connectTimeout)
	defer timer.Stop()
	select {
	case <-opened:
	case err := <-failed:
		abandon(sock)
		return nil, fmt.Errorf("socket.io: engine connection: %w", err)
	case <-timer.C:
		abandon(sock)
		return nil, fmt.Errorf("socket.io: the engine connection did not open within %v", connectTimeout)
	}
	sock.Connect()
	return t, nil
}

// abandon closes a socket whose namespace was never connected, and its
// engine connection.
func abandon(sock *sio.Socket) {
	sock.Close()
	if eng := sock.Io().Engine(); eng != nil {
		eng.Close()
	}
}

// lostOpens counts the connections recoverLostOpen had to rescue.
var lostOpens atomic.Int64

// recoverLostOpen works around a race in the Go client (v3.0.6). The
// Manager's Open calls engine.NewSocket, which dials the websocket and
// starts the goroutine that reads it, and only then listens for the
// engine's "open" event. When that goroutine handles the server's OPEN
// packet first, the event is lost: the Manager never opens and the
// namespace CONNECT is never sent, so the socket waits forever (about one
// connection in 100-200 on a loaded 2-core machine). The event can only
// have been lost if the engine is already open when Connect returns; then,
// unless the Manager opens within a second (the event was being handled),
// emit it again. (Within 50 ms was too short on a loaded machine: an event
// only late was then handled twice, and the connection, opened twice,
// died without the socket noticing: a session the clients counted as live
// that the gateway had ended.)
func recoverLostOpen(mgr *sio.Manager, opened <-chan struct{}) {
	eng := mgr.Engine()
	if eng == nil || eng.ReadyState() != engine.SocketStateOpen {
		return
	}
	wait := time.NewTimer(time.Second)
	defer wait.Stop()
	select {
	case <-opened:
		return
	case <-wait.C:
	}
	lostOpens.Add(1)
	eng.Emit("open")
}

// waitReady waits for connection-ready.
func (t *gatewayTerminal) waitReady(ctx context.Context, timeout time.Duration) error {
	tm := time.NewTimer(timeout)
	defer tm.Stop()
	select {
	case <-t.ready:
		return nil
	case <-t.gone:
		t.mu.Lock()
		defer t.mu.Unlock()
		return fmt.Errorf("gateway session ended before connection-ready: reason %q, closing %v, connect error %v",
			t.reason, t.closing, t.connectErr)
	case <-tm.C:
		t.mu.Lock()
		defer t.mu.Unlock()
		return fmt.Errorf("no connection-ready after %v (credentials %s, socket id %q, connect event at %v)",
			timeout, t.id, t.sock.Id(), t.connected.Format("15:04:05.000"))
	case <-ctx.Done():
		return ctx.Err()
	}
}

// openGateway creates credentials for l, connects and waits for
// connection-ready.
func openGateway(ctx context.Context, base string, l login, timeout time.Duration) (*gatewayTerminal, error) {
	id, err := createCredentials(ctx, base, l)
	if err != nil {
		return nil, err
	}
	t, err := connectGateway(base, id, timeout, !l.textOutput)
	if err != nil {
		return nil, err
	}
	if err := t.waitReady(ctx, timeout); err != nil {
		t.close()
		return nil, err
	}
	return t, nil
}

func (t *gatewayTerminal) send(s string) error {
	return t.sock.Emit("ssh-input", map[string]any{"input": s})
}

func (t *gatewayTerminal) output() *stream { return t.out }

func (t *gatewayTerminal) close() { t.sock.Disconnect() }

// ended returns the closing message and disconnect reason once the server
// has ended the session.
func (t *gatewayTerminal) ended(ctx context.Context, timeout time.Duration) (closing map[string]any, reason string, err error) {
	tm := time.NewTimer(timeout)
	defer tm.Stop()
	select {
	case <-t.gone:
	case <-tm.C:
		return nil, "", fmt.Errorf("session not ended after %v", timeout)
	case <-ctx.Done():
		return nil, "", ctx.Err()
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.closing, t.reason, nil
}
