package terminal_test

import (
	"context"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alfresco-ssh/alfresco-ssh/internal/lightssh"
	"github.com/alfresco-ssh/alfresco-ssh/sshbridge"
	"github.com/alfresco-ssh/alfresco-ssh/terminal"
)

func (c *client) snapshot() []message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]message(nil), c.messages...)
}

func (c *client) lastSeq() uint64 {
	ms := c.snapshot()
	if len(ms) == 0 {
		return 0
	}
	return ms[len(ms)-1].Seq
}

// acking returns a condition for waitFor that also acknowledges what the
// client got, as a page does (on a goroutine of its own: the condition
// runs under the client's lock, which the terminal's answer needs).
func acking(c *client, term *terminal.Terminal, cond func() bool) func() bool {
	return func() bool {
		if n := len(c.messages); n > 0 {
			go term.Ack(c.messages[n-1].Seq) // Ends at once.
		}
		return cond()
	}
}

// text joins the output of messages up to seq (0: all).
func text(ms []message, upTo uint64) string {
	var b strings.Builder
	for _, m := range ms {
		if upTo == 0 || m.Seq <= upTo {
			b.WriteString(m.Output)
		}
	}
	return b.String()
}

func resumable(window time.Duration, buffer int) func(*terminal.Config) {
	return func(c *terminal.Config) { c.ResumeWindow, c.ResumeBuffer = window, buffer }
}

// startResumable opens a terminal that opted in and waits for its shell.
func (f *fixture) startResumable(t *testing.T) (*terminal.Terminal, *client, string) {
	t.Helper()
	c := newClient(t)
	term := f.m.Open(c, "192.0.2.1", nil)
	term.StartResumable(f.credentialsID(f.target()))
	f.nextPTY(t)
	r := c.waitReady()
	if r.ResumeToken == "" || r.Resumed {
		t.Fatalf("connection-ready: got %+v, want a resume token, not resumed", r)
	}
	return term, c, r.ResumeToken
}

// TestResume: a client that goes away while the remote floods (and never
// acknowledges) detaches the session; the flood pauses once the buffer
// is full; a new client resumes with the token and the last seq it
// showed (one less than it got: the last message died in the transport)
// and gets the rest, every byte once and in order. The token works once.
func TestResume(t *testing.T) {
	const buffer = 16 << 10
	f := newFixture(t, resumable(time.Minute, buffer))
	term, c1, token := f.startResumable(t)
	term.Input("flood 300000\r")
	c1.waitFor("flood output", func() bool { return len(text(c1.messages, 0)) > buffer/4 })
	term.Stop(terminal.ErrClientGone) // detaches it: the resume below finds it
	ms1 := c1.snapshot()
	for i, m := range ms1 {
		if m.Seq != uint64(i+1) {
			t.Fatalf("message %d: got seq %d, want %d", i, m.Seq, i+1)
		}
	}
	last := ms1[len(ms1)-1].Seq - 1

	c2 := newClient(t)
	t2 := f.m.Open(c2, "198.51.100.7", nil)
	t2.Resume(token, last)
	r := c2.waitReady()
	if !r.Resumed || r.ResumeToken == "" || r.ResumeToken == token || r.Partial {
		t.Fatalf("connection-ready of the resume: got %+v, want resumed with a new token, not partial", r)
	}
	if got := term.Info().Client; got != "198.51.100.7" {
		t.Errorf("client of the resumed session: got %q, want the resuming client's 198.51.100.7", got)
	}
	want := "flood 300000\r\n" + string([]rune(string(lightssh.FloodData(300000))))
	got := func() string { return text(ms1, last) + text(c2.messages, 0) }
	c2.waitFor("the whole flood", acking(c2, t2, func() bool { return len(got()) >= len(want) }))
	if g := got(); g != want {
		t.Errorf("output across the resume: got %d bytes, want %d (every byte once, in order)", len(g), len(want))
	}
	for i, m := range c2.snapshot() {
		if m.Seq != last+1+uint64(i) {
			t.Fatalf("resumed message %d: got seq %d, want %d", i, m.Seq, last+1+uint64(i))
		}
	}
	// Input goes to the shell from the new client, not from the old one.
	term.Input("size\r")
	t2.Input("size\r")
	c2.waitFor("the size", acking(c2, t2, func() bool { return strings.Contains(text(c2.messages, 0), "24 80") }))
	if n := strings.Count(text(c2.snapshot(), 0), "size\r\n"); n != 1 {
		t.Errorf("the shell ran size %d times, want once (the former client's input is dropped)", n)
	}

	// The used token is refused, and so is a forged one.
	for _, tok := range []string{token, "forged", ""} {
		c := newClient(t)
		f.m.Open(c, "192.0.2.9", nil).Resume(tok, 0)
		if m := c.closing(); m.Output != "\r\n\x1b[91mThe session has ended.\x1b[0m\r\n" || m.Seq != 0 {
			t.Errorf("resume with token %q: got closing message %+v, want the red 'The session has ended.'", tok, m)
		}
	}
	// The session went on meanwhile.
	t2.Input("exit\r")
	if m := c2.closing(); m.Output != "\r\n\x1b[91mConnection closed.\x1b[0m\r\n" || m.Seq == 0 {
		t.Errorf("closing message: got %+v, want a numbered 'Connection closed.'", m)
	}
	waitDone(t, term)
}

// TestResumeRepaint: a client that lost its screen resumes with seq 0 and
// gets the recent output again; partial says when it does not reach back
// to the start.
func TestResumeRepaint(t *testing.T) {
	f := newFixture(t, resumable(time.Minute, 0))
	term, c1, token := f.startResumable(t)
	term.Input("flood 200000\r")
	want := "flood 200000\r\n" + string([]rune(string(lightssh.FloodData(200000))))
	c1.waitFor("the flood", acking(c1, term, func() bool { return len(text(c1.messages, 0)) >= len(want) }))
	term.Stop(terminal.ErrClientGone)

	c2 := newClient(t)
	t2 := f.m.Open(c2, "192.0.2.1", nil)
	t2.Resume(token, 0)
	if r := c2.waitReady(); !r.Resumed || !r.Partial {
		t.Errorf("connection-ready: got %+v, want resumed and partial", r)
	}
	c2.waitFor("the replay of at least 64 KiB, the end of the output", func() bool {
		got := text(c2.messages, 0)
		return len(got) >= 64<<10 && strings.HasSuffix(want, got)
	})
}

// TestResumeExpired: a terminal detached for longer than the window ends
// (the log says so, the observers that the client left; e2e checks that
// no sshd child is left), and its token no longer works.
func TestResumeExpired(t *testing.T) {
	log, logs := newLog()
	f := newFixture(t, func(c *terminal.Config) {
		resumable(200*time.Millisecond, 0)(c)
		c.Logger = log
	})
	term, c1, token := f.startResumable(t)
	term.Stop(terminal.ErrClientGone)
	waitDone(t, term)
	if c1.isClosed() {
		t.Error("the client that left was closed again")
	}
	if lines := logs(); len(grep(lines, "terminal detached")) != 1 ||
		len(grep(lines, terminal.ErrResumeExpired.Error())) != 1 {
		t.Errorf("log: got %q, want the terminal detached, then ended as the resume window passed", lines)
	}
	calls, infos := f.obs.get()
	if len(calls) != 2 || calls[1] != "ended" || infos[1].Reason != terminal.ReasonClientGone {
		t.Errorf("observer: got %v %+v, want started, ended with %q", calls, infos, terminal.ReasonClientGone)
	}
	c := newClient(t)
	f.m.Open(c, "192.0.2.1", nil).Resume(token, 0)
	c.closing()
}

// TestResumeTakeOver: a resume while the old client is still attached (a
// reload faster than the old page's goodbye) takes the session over; the
// old client is told and closed, and its late goodbye changes nothing.
func TestResumeTakeOver(t *testing.T) {
	f := newFixture(t, resumable(time.Minute, 0))
	term, c1, token := f.startResumable(t)
	c2 := newClient(t)
	t2 := f.m.Open(c2, "192.0.2.1", nil)
	t2.Resume(token, c1.lastSeq())
	c2.waitReady()
	if m := c1.closing(); !strings.Contains(m.Output, "resumed in another window") {
		t.Errorf("old client's closing message: got %q", m.Output)
	}
	term.Stop(terminal.ErrClientGone) // the old socket's disconnect
	t2.Input("size\r")
	c2.waitFor("the size", func() bool { return strings.Contains(text(c2.messages, 0), "24 80") })
	if got := term.State(); got != terminal.Running {
		t.Errorf("state: got %v, want running", got)
	}
}

// TestNotResumable: without the opt-in, or with resume off, a client
// that leaves ends the session, and connection-ready has no token.
func TestNotResumable(t *testing.T) {
	for _, tc := range []struct {
		name   string
		window time.Duration
		optIn  bool
	}{{"no opt-in", time.Minute, false}, {"resume off", 0, true}} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, resumable(tc.window, 0))
			c := newClient(t)
			term := f.m.Open(c, "192.0.2.1", nil)
			if tc.optIn {
				term.StartResumable(f.credentialsID(f.target()))
			} else {
				term.Start(f.credentialsID(f.target()))
			}
			if r := c.waitReady(); r.ResumeToken != "" {
				t.Errorf("connection-ready: got a resume token")
			}
			term.Input("size\r")
			c.waitFor("output", func() bool { return len(c.messages) > 0 })
			if m := c.snapshot()[0]; m.Seq != 0 {
				t.Errorf("output numbered %d without resume", m.Seq)
			}
			term.Stop(terminal.ErrClientGone)
			waitDone(t, term)
		})
	}
}

// freezer forwards TCP to a target until frozen: then nothing passes
// either way, as with a remote host that stopped (the connections stay
// open).
type freezer struct {
	ln     net.Listener
	frozen chan struct{}
	once   sync.Once
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  []net.Conn
}

// startFreezer starts a freezer in front of f's SSH server and returns it
// with the target that reaches the server through it.
func startFreezer(t *testing.T, f *fixture) (*freezer, sshbridge.Target) {
	target := f.srv.Addr().String()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &freezer{ln: ln, frozen: make(chan struct{})}
	p.wg.Add(1)
	go func() { // Ends when the listener closes.
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			p.wg.Add(2)
			go p.copy(up, c) // Each ends when its connections close.
			go p.copy(c, up)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	a := ln.Addr().(*net.TCPAddr)
	tgt := f.target()
	tgt.Host, tgt.Port = a.IP.String(), a.Port
	return p, tgt
}

func (p *freezer) copy(dst, src net.Conn) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		select {
		case <-p.frozen:
			io.Copy(io.Discard, src) // swallowed until closed
			return
		default:
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			dst.Close()
			return
		}
	}
}

func (p *freezer) freeze() { p.once.Do(func() { close(p.frozen) }) }

// cut closes the connections made so far, as a connection that breaks.
func (p *freezer) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
}

// TestKeepalive: a remote that stops answering ends the terminal, with the
// red message, within interval × (count + 1), also while detached; a
// healthy idle one is not ended by the probes.
func TestKeepalive(t *testing.T) {
	const interval, count = 100 * time.Millisecond, 2
	keepalive := func(c *terminal.Config) {
		c.SSH.KeepaliveInterval, c.SSH.KeepaliveCount = interval, count
		c.ResumeWindow = time.Minute
	}
	t.Run("healthy", func(t *testing.T) {
		// Each probe may take up to 4 intervals to be answered (a loaded
		// machine), yet unanswered probes would end it within 5.
		const count = 4
		f := newFixture(t, func(c *terminal.Config) { keepalive(c); c.SSH.KeepaliveCount = count })
		term, c := f.start(t)
		idle := time.After(2 * (count + 1) * interval) // a stretch of probes: nothing may happen
		select {
		case <-term.Done():
			t.Fatalf("a healthy idle terminal ended: %q", c.output())
		case <-idle:
		}
	})
	for _, detached := range []bool{false, true} {
		name := map[bool]string{false: "frozen", true: "frozen while detached"}[detached]
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, keepalive)
			p, tgt := startFreezer(t, f)
			c := newClient(t)
			term := f.m.Open(c, "192.0.2.1", nil)
			term.StartResumable(f.credentialsID(tgt))
			f.nextPTY(t)
			c.waitReady()
			if detached {
				term.Stop(terminal.ErrClientGone)
			}
			start := time.Now()
			p.freeze()
			waitDone(t, term)
			t.Logf("ended %v after the freeze (bound %v)", time.Since(start).Round(time.Millisecond), interval*(count+1))
			_, infos := f.obs.get()
			if r := infos[len(infos)-1].Reason; r != terminal.ReasonLost {
				t.Errorf("reason: got %q, want %q", r, terminal.ReasonLost)
			}
			if detached {
				return
			}
			if m := c.closing(); m.Output != "\r\n\x1b[91mConnection closed: the remote host stopped responding.\x1b[0m\r\n" {
				t.Errorf("closing message: got %q", m.Output)
			}
		})
	}
}

// BenchmarkDetachedMemory reports the heap a detached session holds
// while its remote floods (it is paused once --resume-buffer is full),
// beyond an idle detached session: go test -run - -bench DetachedMemory
// ./terminal/.
func BenchmarkDetachedMemory(b *testing.B) {
	const sessions = 20
	t := &testing.T{}
	for b.Loop() {
		heap := func(flood bool) uint64 {
			f := newFixture(t, resumable(time.Minute, 0))
			defer f.m.Shutdown(context.Background())
			defer f.srv.Close()
			var terms []*terminal.Terminal
			for range sessions {
				c := newClient(t)
				term := f.m.Open(c, "192.0.2.1", nil)
				term.StartResumable(f.credentialsID(f.target()))
				f.nextPTY(t)
				c.waitReady()
				if flood {
					term.Input("stream 0\r") // Text over and over, as fast as it goes
				}
				term.Stop(terminal.ErrClientGone)
				terms = append(terms, term)
			}
			// Until every flood has stopped: the bytes read stay put.
			var last uint64
			for {
				time.Sleep(300 * time.Millisecond)
				var n uint64
				for _, term := range terms {
					n += term.Info().BytesOut
				}
				if n == last {
					break
				}
				last = n
			}
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			return ms.HeapInuse
		}
		idle, flooding := heap(false), heap(true)
		b.ReportMetric(float64(int64(flooding)-int64(idle))/sessions/1024, "KiB/session")
	}
}
