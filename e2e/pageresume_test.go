package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alfresco-ssh/alfresco-ssh/internal/sshdtest"
)

// Browser tests of the Resume extension (PROTOCOL.md) from the stock page:
// a reload, a second tab, a dropped connection, a session that outlives
// the resume window.

// tcpProxy forwards TCP connections to a target until cut: then it closes
// every connection it carries and every new one, as a network that has
// gone away would, until restored.
type tcpProxy struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu    sync.Mutex
	down  bool
	conns map[net.Conn]struct{}
}

func startTCPProxy(t testing.TB, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.serve() // Ends when the listener is closed.
	t.Cleanup(func() {
		ln.Close()
		p.cut()
		p.wg.Wait()
	})
	return p
}

// url is the proxy's address as an http URL.
func (p *tcpProxy) url() string { return "http://" + p.ln.Addr().String() }

func (p *tcpProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(c) {
			c.Close()
			continue
		}
		p.wg.Add(1)
		go p.forward(c) // Ends when either side closes.
	}
}

func (p *tcpProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *tcpProxy) forward(c net.Conn) {
	defer p.wg.Done()
	defer p.drop(c)
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	if !p.track(up) {
		up.Close()
		return
	}
	defer p.drop(up)
	done := make(chan struct{}, 2)
	go func() { io.Copy(up, c); done <- struct{}{} }() // Ends when c or up closes.
	go func() { io.Copy(c, up); done <- struct{}{} }()
	<-done
	c.Close()
	up.Close()
	<-done
}

func (p *tcpProxy) drop(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

// cut closes every connection and refuses new ones until restore.
func (p *tcpProxy) cut() {
	p.mu.Lock()
	p.down = true
	conns := p.conns
	p.conns = map[net.Conn]struct{}{}
	p.mu.Unlock()
	for c := range conns {
		c.Close()
	}
}

func (p *tcpProxy) restore() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}

const readyJS = `() => window.alfresco && window.alfresco.state === "ready"`

func TestBrowserResume(t *testing.T) {
	getBrowser(t)
	sshd := sshdtest.Start(t)

	// A reload resumes: the screen comes back and a full-screen program
	// redraws (the page nudges the PTY size: the remote sees one row less,
	// then its size again).
	t.Run("reload", func(t *testing.T) {
		g := startGateway(t)
		p := newPage(t, pageOptions{})
		url := g.url + "/?connection=" + g.createCredentials(t, login(sshd))
		openTerminal(t, p, url)
		rows, cols := checkSize(t, p)

		// A program that prints the size on every SIGWINCH.
		tag := randomTag()
		p.run(`python3 -c 'import os, signal; signal.signal(signal.SIGWINCH, lambda *a: print("WIN" + "CH-` + tag + `", *os.get_terminal_size()[::-1], flush=True)); print("WAIT" + "ING-` + tag + `", flush=True); [signal.pause() for _ in iter(int, 1)]'`)
		p.waitLine("WAITING-" + tag)
		p.navigate(url)
		p.waitFor("the session to resume", readyJS, nil)
		p.waitLine("WAITING-" + tag) // the screen is back
		p.waitLine(fmt.Sprintf("WINCH-%s %d %d", tag, rows-1, cols))
		p.waitLine(fmt.Sprintf("WINCH-%s %d %d", tag, rows, cols))
		p.press("Control+C")
		p.waitPrompt()

		// top, with a refresh far away: only the nudge can redraw it.
		p.run("top -d 60")
		topJS := `() => {
			const b = ` + termJS + `.buffer.active, first = b.getLine(b.baseY).translateToString(true);
			return first.startsWith("top - ") && ` + linesJS + `.some((l) => /PID\s+USER/.test(l));
		}`
		p.waitFor("top", topJS, nil)
		p.navigate(url)
		p.waitFor("the session to resume", readyJS, nil)
		p.waitFor("top, redrawn", topJS, nil)
		p.press("q")
		p.waitPrompt()
		checkEcho(t, p)

		// Another tab (its own sessionStorage) with the same URL cannot
		// take the session; the first one keeps it.
		other := newPage(t, pageOptions{})
		if status := other.navigate(url); status == http.StatusOK {
			other.waitFor("the other tab to be refused", `() => window.alfresco && window.alfresco.state === "ended"`, nil)
		}
		checkEcho(t, p)
	})

	// A dropped connection: the overlay counts down, the page resumes, and
	// output printed meanwhile arrives, every line once and in order. The
	// framing parent hears "disconnected" and "resumed".
	t.Run("drop", func(t *testing.T) {
		g := startGateway(t, "--embed-origins", "*", "--allowed-hosts", "*") // the proxy has a port of its own
		proxy := startTCPProxy(t, strings.TrimPrefix(g.url, "http://"))
		parent := startEmbedder(t)
		p := newPage(t, pageOptions{})
		p.navigate(parent.url(proxy.url() + "/?connection=" + g.createCredentials(t, login(sshd))))
		f := p.inFrame(proxy.url())
		f.waitFor("the framed session to be ready", readyJS, nil)
		f.click(".xterm")
		f.waitPrompt()
		f.eval(`() => {
			const s = window.alfresco.socket, emit = s.emit;
			window.__acks = [];
			s.emit = function (event, ...args) {
				if (event === "ssh-ack") window.__acks.push(args[0].seq);
				return emit.call(this, event, ...args);
			};
			s.on("ssh-output", (d) => { window.__lastSeq = d.seq; });
		}`, nil, nil)

		tag := randomTag()
		f.run(`for i in $(seq 1 40); do echo line-` + tag + `-$i; sleep 0.1; done; echo DONE-` + tag + `-$((2+2))`)
		f.waitLine("line-" + tag + "-3")
		proxy.cut()
		f.waitFor("the overlay", `() => {
			const o = document.getElementById("alfresco-overlay");
			return window.alfresco.state === "reconnecting" && !o.hidden && /^Reconnecting… \d+ s left$/.test(o.textContent);
		}`, nil)
		waitParentMessage(t, p, "disconnected")
		f.waitFor("a failed attempt to reconnect", `() => window.alfresco.socket.io.backoff.attempts > 1`, nil)
		proxy.restore()
		f.waitFor("the session to resume", readyJS, nil)
		waitParentMessage(t, p, "resumed")
		f.waitFor("the overlay to go", `() => document.getElementById("alfresco-overlay").hidden`, nil)
		f.waitLine("DONE-" + tag + "-4")
		var lines []string
		f.eval(`() => `+linesJS, nil, &lines)
		checkCounted(t, lines, "line-"+tag+"-", 40)
		// Output is acknowledged: within a second of the last output,
		// the page has acknowledged all it has shown.
		f.waitFor("the last output acknowledged", `() => window.__lastSeq > 0 && window.__acks[window.__acks.length - 1] === window.__lastSeq`, nil)
		f.waitPrompt()
		checkEcho(t, f)
	})
}

// TestBrowserResumeExpired: a page away for longer than the resume window
// learns that its session ended meanwhile, and the SSH session is gone.
func TestBrowserResumeExpired(t *testing.T) {
	getBrowser(t)
	sshd := sshdtest.Start(t)
	g := startGateway(t, "--resume-window", "2s", "--allowed-hosts", "*")
	proxy := startTCPProxy(t, strings.TrimPrefix(g.url, "http://"))
	p := newPage(t, pageOptions{})
	openTerminal(t, p, proxy.url()+"/?connection="+g.createCredentials(t, login(sshd)))
	proxy.cut()
	p.waitFor("the overlay", `() => window.alfresco.state === "reconnecting"`, nil)
	if err := sshd.WaitNoChildren(20 * time.Second); err != nil {
		t.Error(err)
	}
	proxy.restore()
	p.waitLine("The session ended while the page was disconnected.")
	p.waitFor("the page to end", `() => window.alfresco.state === "ended" && document.getElementById("alfresco-overlay").hidden`, nil)
}
