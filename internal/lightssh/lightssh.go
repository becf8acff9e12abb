// Package lightssh is a small SSH server for tests and benchmarks, written
// on golang.org/x/crypto/ssh's server side: password, keyboard-interactive
// or public-key authentication for one user, "session" channels with
// pty-req, window-change and a tiny line shell (see Shell) instead of a
// real one. It costs a few goroutines and tens of KiB per session, so one
// process can hold thousands of sessions where OpenSSH forks per login.
//
// Concurrency: a Server serves each connection on goroutines of its own;
// Close stops it and waits for all of them. Its methods are safe for
// concurrent use.
package lightssh

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	mathrand "math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"
)

// Options configures a Server.
type Options struct {
	// User is the only user name accepted.
	User string
	// Password is accepted by "password" auth, or by "keyboard-interactive"
	// when KeyboardInteractiveOnly is set. Empty disables both.
	Password string
	// KeyboardInteractiveOnly offers keyboard-interactive (a hidden
	// "Password: " prompt, repeated on a wrong answer) instead of password.
	KeyboardInteractiveOnly bool
	// AuthorizedKeys are accepted by "publickey" auth.
	AuthorizedKeys []ssh.PublicKey
	// RejectSessions refuses every "session" channel.
	RejectSessions bool
	// HostKeys are the host keys (or certificates) the server offers; nil
	// offers an ed25519 key made once per process.
	HostKeys []ssh.Signer
	// PTYEvents, when set, receives every pty-req and window-change in
	// arrival order; the session waits until it is received (or Close).
	PTYEvents chan<- PTYEvent
	// Prompt, when set, is printed when the shell starts and after every
	// line it runs, as an interactive shell does.
	Prompt string
}

// maxKeyboardRounds is how often the keyboard-interactive server repeats
// its prompt after a wrong answer, like PAM does.
const maxKeyboardRounds = 5

// PTYEvent is a "pty-req" or "window-change" request as the server saw it.
type PTYEvent struct {
	Kind          string // "pty-req" or "window-change"
	Term          string // pty-req only
	Rows, Cols    int
	Width, Height int    // in pixels
	Modes         string // pty-req only: the decoded modes, as fmt prints a map[byte]uint32
}

// Server is an SSH server on a TCP listener. Its sessions run Shell.
type Server struct {
	opts    Options
	cfg     *ssh.ServerConfig
	ln      net.Listener
	hostKey ssh.PublicKey

	keyboardAnswers atomic.Int32

	done chan struct{} // closed by Close; unblocks event sends
	wg   sync.WaitGroup

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

var defaultHostKey = sync.OnceValues(func() (ssh.Signer, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	return ssh.NewSignerFromKey(priv)
})

// Listen starts a server on addr ("127.0.0.1:0" for any free port).
func Listen(addr string, opts Options) (*Server, error) {
	signers := opts.HostKeys
	if len(signers) == 0 {
		signer, err := defaultHostKey()
		if err != nil {
			return nil, fmt.Errorf("lightssh: host key: %w", err)
		}
		signers = []ssh.Signer{signer}
	}
	s := &Server{
		opts:    opts,
		hostKey: signers[0].PublicKey(),
		done:    make(chan struct{}),
		conns:   make(map[net.Conn]struct{}),
	}
	s.cfg = &ssh.ServerConfig{}
	for _, signer := range signers {
		s.cfg.AddHostKey(signer)
	}
	if opts.Password != "" && opts.KeyboardInteractiveOnly {
		s.cfg.KeyboardInteractiveCallback = s.keyboardInteractive
	} else if opts.Password != "" {
		s.cfg.PasswordCallback = func(c ssh.ConnMetadata, password []byte) (*ssh.Permissions, error) {
			if c.User() == opts.User && string(password) == opts.Password {
				return nil, nil
			}
			return nil, errors.New("wrong password")
		}
	}
	if len(opts.AuthorizedKeys) > 0 {
		s.cfg.PublicKeyCallback = func(c ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			for _, k := range opts.AuthorizedKeys {
				if c.User() == opts.User && bytes.Equal(k.Marshal(), key.Marshal()) {
					return nil, nil
				}
			}
			return nil, errors.New("key not authorized")
		}
	}
	var err error
	if s.ln, err = net.Listen("tcp", addr); err != nil {
		return nil, fmt.Errorf("lightssh: %w", err)
	}
	s.wg.Go(s.acceptLoop)
	return s, nil
}

// Addr returns the address the server listens on.
func (s *Server) Addr() *net.TCPAddr { return s.ln.Addr().(*net.TCPAddr) }

// User returns the user name the server accepts.
func (s *Server) User() string { return s.opts.User }

// HostKey returns the server's (first) host key.
func (s *Server) HostKey() ssh.PublicKey { return s.hostKey }

// KeyboardAnswers returns how many keyboard-interactive rounds clients
// have answered.
func (s *Server) KeyboardAnswers() int32 { return s.keyboardAnswers.Load() }

// Conns returns how many connections the server holds.
func (s *Server) Conns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Close stops the server: it closes the listener and every connection and
// waits for all the server's goroutines.
func (s *Server) Close() {
	close(s.done)
	s.ln.Close()
	s.mu.Lock()
	s.closed = true
	conns := s.conns
	s.conns = nil
	s.mu.Unlock()
	for c := range conns {
		c.Close()
	}
	s.wg.Wait()
}

func (s *Server) acceptLoop() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Go(func() { s.serveConn(c) })
	}
}

func (s *Server) serveConn(c net.Conn) {
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		c.Close()
	}()
	sc, chans, reqs, err := ssh.NewServerConn(c, s.cfg)
	if err != nil {
		return
	}
	defer sc.Close()
	s.wg.Go(func() { ssh.DiscardRequests(reqs) })
	for nc := range chans {
		if nc.ChannelType() != "session" || s.opts.RejectSessions {
			nc.Reject(ssh.Prohibited, "sessions are not allowed")
			continue
		}
		s.wg.Go(func() { s.serveSession(sc, nc) })
	}
}

func (s *Server) keyboardInteractive(c ssh.ConnMetadata, challenge ssh.KeyboardInteractiveChallenge) (*ssh.Permissions, error) {
	for range maxKeyboardRounds {
		answers, err := challenge(c.User(), "", []string{"Password: "}, []bool{false})
		if err != nil {
			return nil, err
		}
		s.keyboardAnswers.Add(1)
		if c.User() == s.opts.User && len(answers) == 1 && answers[0] == s.opts.Password {
			return nil, nil
		}
	}
	return nil, errors.New("too many wrong answers")
}

// termSize is the PTY size of one session, shared by its request handler
// and its shell.
type termSize struct {
	mu         sync.Mutex
	rows, cols int
}

func (z *termSize) set(rows, cols uint32) {
	z.mu.Lock()
	z.rows, z.cols = int(rows), int(cols)
	z.mu.Unlock()
}

func (z *termSize) get() (rows, cols int) {
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.rows, z.cols
}

func (s *Server) event(ev PTYEvent) {
	if s.opts.PTYEvents == nil {
		return
	}
	select {
	case s.opts.PTYEvents <- ev:
	case <-s.done:
	}
}

func (s *Server) serveSession(conn ssh.Conn, nc ssh.NewChannel) {
	ch, reqs, err := nc.Accept()
	if err != nil {
		return
	}
	defer ch.Close()
	size := new(termSize)
	shellStarted := false
	for req := range reqs {
		switch req.Type {
		case "pty-req":
			// RFC 4254 6.2: TERM, then width (columns) before height (rows).
			var m struct {
				Term                      string
				Cols, Rows, Width, Height uint32
				Modes                     string
			}
			if err := ssh.Unmarshal(req.Payload, &m); err != nil {
				req.Reply(false, nil)
				continue
			}
			modes, ok := decodeModes(m.Modes)
			if !ok {
				req.Reply(false, nil)
				continue
			}
			size.set(m.Rows, m.Cols)
			s.event(PTYEvent{Kind: req.Type, Term: m.Term, Rows: int(m.Rows), Cols: int(m.Cols),
				Width: int(m.Width), Height: int(m.Height), Modes: fmt.Sprint(modes)})
			req.Reply(true, nil)
		case "window-change":
			// RFC 4254 6.7: columns before rows.
			var m struct{ Cols, Rows, Width, Height uint32 }
			if err := ssh.Unmarshal(req.Payload, &m); err != nil {
				req.Reply(false, nil)
				continue
			}
			size.set(m.Rows, m.Cols)
			s.event(PTYEvent{Kind: req.Type, Rows: int(m.Rows), Cols: int(m.Cols),
				Width: int(m.Width), Height: int(m.Height)})
			req.Reply(true, nil)
		case "shell":
			if shellStarted {
				req.Reply(false, nil)
				continue
			}
			shellStarted = true
			req.Reply(true, nil)
			s.wg.Go(func() { s.shell(conn, ch, size) })
		default:
			req.Reply(false, nil)
		}
	}
}

// shell echoes its input like a PTY in echo mode and runs each line ended
// by CR as a command:
//
//	size      prints "rows cols"
//	flood N   writes FloodData(N)
//	stream R  prints lines of text (see Text) at R bytes a second in ten
//	          writes a second, or as fast as the client takes them when R
//	          is 0, until the next input, which stops it and is dropped,
//	          as ^C would be
//	stderr X  writes X to the extended-data (stderr) stream
//	probe     sends what an SSH server may send the client on its own,
//	          each wanting a reply, and prints the outcomes (see probe)
//	exit      sends exit-status 0 and closes the channel
//	drop      closes the connection without an exit status
//	hang      reads no more input, until the connection ends
//
// Other lines do nothing. With Options.Prompt set, the prompt follows the
// shell's start and every command's output.
func (s *Server) shell(conn ssh.Conn, ch ssh.Channel, size *termSize) {
	defer ch.Close()
	prompt := []byte(s.opts.Prompt)
	if _, err := ch.Write(prompt); err != nil {
		return
	}
	buf := make([]byte, 4096)
	var line, echo []byte
	var streaming *stream
	defer func() { streaming.stop() }()
	for {
		n, err := ch.Read(buf)
		p := buf[:n]
		if streaming != nil && n > 0 {
			streaming.stop()
			streaming, p = nil, nil
			echo = append(append(echo, '\r', '\n'), prompt...)
		}
		for _, b := range p {
			if b != '\r' && b != '\n' {
				line = append(line, b)
				echo = append(echo, b)
				continue
			}
			echo = append(echo, '\r', '\n')
			if _, err := ch.Write(echo); err != nil {
				return
			}
			echo = echo[:0]
			cmd := string(line)
			line = line[:0]
			if name, arg, _ := strings.Cut(cmd, " "); name == "stream" {
				rate, convErr := strconv.Atoi(arg)
				if convErr == nil && rate >= 0 {
					streaming = startStream(ch, rate)
					break // the rest of this input is dropped
				}
				echo = fmt.Appendf(echo, "stream: bad rate %q\r\n", arg)
			} else if !runCommand(conn, ch, size, cmd) {
				return
			}
			echo = append(echo, prompt...)
		}
		if len(echo) > 0 {
			if _, err := ch.Write(echo); err != nil {
				return
			}
			echo = echo[:0]
		}
		if err != nil {
			return
		}
	}
}

// stream prints Text over and over on a channel from a goroutine of its own.
type stream struct {
	quit chan struct{}
	done chan struct{}
}

// streamTick is how often a paced stream writes: ten times a second, as a
// busy log or a build prints lines, rather than a trickle of tiny writes.
const streamTick = 100 * time.Millisecond

func startStream(w io.Writer, rate int) *stream {
	st := &stream{quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(st.done)
		text := Text()
		off := 0
		next := func(n int) []byte { // the next n bytes of text, cycling
			b := make([]byte, 0, n)
			for len(b) < n {
				k := min(n-len(b), len(text)-off)
				b = append(b, text[off:off+k]...)
				off = (off + k) % len(text)
			}
			return b
		}
		var tick <-chan time.Time
		chunk := 32 << 10
		if rate > 0 {
			t := time.NewTicker(streamTick)
			defer t.Stop()
			tick = t.C
			chunk = max(1, rate*int(streamTick)/int(time.Second))
		}
		for {
			if tick != nil {
				select {
				case <-tick:
				case <-st.quit:
					return
				}
			}
			select {
			case <-st.quit:
				return
			default:
			}
			if _, err := w.Write(next(chunk)); err != nil {
				return
			}
		}
	}()
	return st
}

// stop ends the stream and waits until its last write has returned; safe
// on a nil stream.
func (st *stream) stop() {
	if st != nil {
		close(st.quit)
		<-st.done
	}
}

// Text returns the text "stream" prints: 64 KiB of lines of at most 76
// characters ending in CRLF, as a PTY prints them, where about one
// character in seven is multi-byte (2, 3 or 4 bytes), so that a gateway
// that splits a character between two messages shows.
var Text = sync.OnceValue(func() []byte {
	rng := mathrand.New(mathrand.NewPCG(1, 2))
	multi := []string{"é", "ß", "€", "日", "本", "𝄞", "😀"}
	var b []byte
	for len(b) < 64<<10 {
		for range rng.IntN(77) {
			if rng.IntN(7) == 0 {
				b = append(b, multi[rng.IntN(len(multi))]...)
			} else {
				b = append(b, byte(0x20+rng.IntN(95)))
			}
		}
		b = append(b, '\r', '\n')
	}
	return b
})

// runCommand runs one shell line and reports whether the shell goes on.
func runCommand(conn ssh.Conn, ch ssh.Channel, size *termSize, cmd string) bool {
	name, arg, _ := strings.Cut(cmd, " ")
	var err error
	switch name {
	case "size":
		rows, cols := size.get()
		_, err = fmt.Fprintf(ch, "%d %d\r\n", rows, cols)
	case "flood":
		n, convErr := strconv.Atoi(arg)
		if convErr != nil {
			_, err = fmt.Fprintf(ch, "flood: bad count %q\r\n", arg)
			break
		}
		_, err = ch.Write(FloodData(n))
	case "stderr":
		_, err = ch.Stderr().Write([]byte(arg))
	case "probe":
		_, err = fmt.Fprintf(ch, "%s\r\n", probe(conn, ch))
	case "exit":
		ch.CloseWrite()
		ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{0}))
		return false
	case "drop":
		conn.Close()
		return false
	case "hang":
		conn.Wait()
		return false
	}
	return err == nil
}

// probe sends a global keepalive@openssh.com request (as OpenSSH does with
// ClientAliveInterval), opens an "x11" channel and sends an
// eow@openssh.com request on the session channel, each wanting a reply,
// and describes what the client answered: ProbeWant when it declines both
// requests and rejects the channel as prohibited.
func probe(conn ssh.Conn, ch ssh.Channel) string {
	global, _, globalErr := conn.SendRequest("keepalive@openssh.com", true, nil)
	open := "accepted"
	if c, _, err := conn.OpenChannel("x11", nil); err == nil {
		c.Close()
	} else if oce, ok := errors.AsType[*ssh.OpenChannelError](err); ok {
		open = oce.Reason.String()
	} else {
		open = err.Error()
	}
	session, sessionErr := ch.SendRequest("eow@openssh.com", true, nil)
	return fmt.Sprintf("global %v %v; open %s; session %v %v", global, globalErr, open, session, sessionErr)
}

// ProbeWant is what the probe command prints for a client that declines
// and rejects.
const ProbeWant = "global false <nil>; open administratively prohibited; session false <nil>"

// decodeModes decodes the terminal modes of a pty-req (RFC 4254 section
// 8): an opcode byte and a uint32 each, up to TTY_OP_END (0), which must
// end the string. ok is false when the encoding is wrong.
func decodeModes(s string) (modes map[byte]uint32, ok bool) {
	modes = make(map[byte]uint32)
	for len(s) >= 5 && s[0] != 0 {
		modes[s[0]] = binary.BigEndian.Uint32([]byte(s[1:5]))
		s = s[5:]
	}
	return modes, s == "\x00"
}

// FloodData returns n deterministic pseudo-random bytes: what "flood N"
// writes.
func FloodData(n int) []byte {
	b := make([]byte, n)
	mathrand.NewChaCha8([32]byte{'s', 's', 'h'}).Read(b)
	return b
}
