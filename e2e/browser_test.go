package e2e

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/alfresco-ssh/alfresco-ssh/internal/syncbuf"
)

// The browser: Debian's Chromium, started once per test process by the
// first test that needs it and stopped by TestMain, driven through
// browser.mjs (playwright-core over the DevTools protocol). Each test gets a
// browser context of its own.

const chromiumPath = "/usr/bin/chromium"

// cdnHost is the CDN the Flask-era fixture pages load xterm.js and
// socket.io-client from. Chromium resolves it to the local fixture server
// (fakeCDN), which serves the npm packages installed in node_modules.
const cdnHost = "cdn.jsdelivr.net"

var (
	sharedMu      sync.Mutex
	sharedBrowser *browser
	sharedErr     error // why the browser could not start; tests fail on it
	sharedSkip    error // what is missing here; tests skip (fail in CI) on it
)

// browser is a running Chromium and the browser.mjs process driving it.
type browser struct {
	cdn *fakeCDN

	chromium     *exec.Cmd
	chromiumDone chan struct{}
	chromiumLog  *syncbuf.Buffer

	node     *exec.Cmd
	nodeDone chan struct{} // closed when browser.mjs's stdout has ended
	nodeLog  *syncbuf.Buffer
	stdin    io.WriteCloser

	mu      sync.Mutex
	nextID  int
	waiting map[int]chan reply
}

type reply struct {
	ID    int             `json:"id"`
	Value json.RawMessage `json:"value"`
	Error *string         `json:"error"`
}

// getBrowser returns the shared browser, starting it on first use.
func getBrowser(t testing.TB) *browser {
	t.Helper()
	dir := e2eDir(t)
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if sharedBrowser == nil && sharedErr == nil && sharedSkip == nil {
		if fi, err := os.Stat(chromiumPath); err != nil || fi.IsDir() {
			sharedSkip = fmt.Errorf("no %s (apt-get install chromium)", chromiumPath)
		} else {
			sharedBrowser, sharedErr = startBrowser(dir, filepath.Join(processDir(t), "chromium-profile"))
		}
	}
	need(t, sharedSkip, "browser tests")
	if sharedErr != nil {
		t.Fatalf("start the browser: %v", sharedErr)
	}
	return sharedBrowser
}

func startBrowser(dir, profile string) (b *browser, err error) {
	b = &browser{
		chromiumLog: &syncbuf.Buffer{},
		nodeLog:     &syncbuf.Buffer{},
		waiting:     map[int]chan reply{},
	}
	defer func() {
		if err != nil {
			b.stop()
		}
	}()
	if b.cdn, err = startCDN(dir); err != nil {
		return b, err
	}
	if err := os.RemoveAll(profile); err != nil {
		return b, err
	}
	b.chromium = exec.Command(chromiumPath,
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--no-first-run", "--disable-component-update", "--disable-sync", "--disable-quic",
		"--user-data-dir="+profile,
		"--remote-debugging-port=0",
		"--host-resolver-rules=MAP "+cdnHost+":443 "+b.cdn.addr,
		"about:blank")
	// Its own process group, so that stop can end the renderers too.
	b.chromium.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stderr, err := b.chromium.StderrPipe()
	if err != nil {
		return b, err
	}
	b.chromium.Stdout = b.chromiumLog
	if err := b.chromium.Start(); err != nil {
		return b, err
	}
	b.chromiumDone = make(chan struct{})
	endpoint := make(chan string, 1)
	devtools := regexp.MustCompile(`DevTools listening on (ws://\S+)`)
	go func() { // Ends when Chromium exits.
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			fmt.Fprintln(b.chromiumLog, sc.Text())
			if m := devtools.FindStringSubmatch(sc.Text()); m != nil {
				endpoint <- m[1]
			}
		}
		io.Copy(b.chromiumLog, stderr)
		b.chromium.Wait()
		close(b.chromiumDone)
	}()
	var ws string
	select {
	case ws = <-endpoint:
	case <-b.chromiumDone:
		return b, fmt.Errorf("chromium exited (%v):\n%s", b.chromium.ProcessState, b.chromiumLog)
	case <-time.After(30 * time.Second):
		return b, fmt.Errorf("chromium printed no DevTools address within 30s:\n%s", b.chromiumLog)
	}

	b.node = exec.Command("node", filepath.Join(dir, "browser.mjs"), ws)
	b.node.Stderr = b.nodeLog
	b.node.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if b.stdin, err = b.node.StdinPipe(); err != nil {
		return b, err
	}
	stdout, err := b.node.StdoutPipe()
	if err != nil {
		return b, err
	}
	if err := b.node.Start(); err != nil {
		return b, err
	}
	b.nodeDone = make(chan struct{})
	go b.readReplies(stdout)
	return b, nil
}

// readReplies hands each reply to its caller; it ends when browser.mjs
// exits, and then fails the calls still waiting.
func (b *browser) readReplies(stdout io.Reader) {
	sc := bufio.NewScanner(stdout)
	sc.Buffer(nil, 64<<20)
	for sc.Scan() {
		var r reply
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			fmt.Fprintf(b.nodeLog, "bad reply %q: %v\n", truncate(sc.Text(), 200), err)
			continue
		}
		b.mu.Lock()
		ch := b.waiting[r.ID]
		delete(b.waiting, r.ID)
		b.mu.Unlock()
		if ch != nil {
			ch <- r
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	close(b.nodeDone)
	for id, ch := range b.waiting {
		msg := "browser.mjs exited"
		ch <- reply{ID: id, Error: &msg}
	}
	clear(b.waiting)
}

// call runs one operation of browser.mjs (see its header).
func (b *browser) call(timeout time.Duration, op string, params map[string]any) (json.RawMessage, error) {
	b.mu.Lock()
	select {
	case <-b.nodeDone:
		b.mu.Unlock()
		return nil, fmt.Errorf("%s: browser.mjs has exited:\n%s", op, b.nodeLog)
	default:
	}
	b.nextID++
	id := b.nextID
	ch := make(chan reply, 1)
	b.waiting[id] = ch
	b.mu.Unlock()

	req := map[string]any{"id": id, "op": op}
	for k, v := range params {
		req[k] = v
	}
	line, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	if _, err := b.stdin.Write(append(line, '\n')); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	select {
	case r := <-ch:
		if r.Error != nil {
			return nil, fmt.Errorf("%s: %s", op, *r.Error)
		}
		return r.Value, nil
	case <-time.After(timeout):
		b.mu.Lock()
		delete(b.waiting, id)
		b.mu.Unlock()
		return nil, fmt.Errorf("%s: no reply from browser.mjs within %v", op, timeout)
	}
}

// stop ends browser.mjs and Chromium, and closes the fake CDN.
func (b *browser) stop() error {
	var errs []error
	if b.node != nil && b.node.Process != nil {
		if _, err := b.call(10*time.Second, "closeBrowser", nil); err != nil {
			errs = append(errs, err)
		}
		b.stdin.Close() // browser.mjs exits at the end of its input
		select {
		case <-b.nodeDone:
		case <-time.After(10 * time.Second):
			b.node.Process.Kill()
			errs = append(errs, errors.New("browser.mjs did not exit; killed"))
			<-b.nodeDone
		}
		if err := b.node.Wait(); err != nil {
			errs = append(errs, fmt.Errorf("browser.mjs: %v\n%s", err, b.nodeLog))
		}
	}
	if b.chromiumDone != nil {
		// Browser.close has ended it, normally; SIGTERM if browser.mjs
		// never ran, SIGKILL to the whole process group as the last resort.
		if b.node == nil || b.node.Process == nil {
			b.chromium.Process.Signal(syscall.SIGTERM)
		}
		select {
		case <-b.chromiumDone:
		case <-time.After(10 * time.Second):
			errs = append(errs, errors.New("chromium did not exit; killed"))
			syscall.Kill(-b.chromium.Process.Pid, syscall.SIGKILL)
			<-b.chromiumDone
		}
		// Whatever is left of its process group (nothing, normally).
		syscall.Kill(-b.chromium.Process.Pid, syscall.SIGKILL)
	}
	if b.cdn != nil {
		b.cdn.srv.Close()
	}
	return errors.Join(errs...)
}

// stopSharedBrowser is called by TestMain after the tests.
func stopSharedBrowser() error {
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if sharedBrowser == nil {
		return nil
	}
	err := sharedBrowser.stop()
	sharedBrowser = nil
	return err
}

// fakeCDN serves the npm packages the Flask-era pages load from the CDN,
// over TLS like the real one, and counts what was fetched.
type fakeCDN struct {
	srv  *httptest.Server
	addr string // "127.0.0.1:port"

	mu      sync.Mutex
	fetched map[string]int
}

func startCDN(dir string) (*fakeCDN, error) {
	files := map[string]string{
		"/npm/xterm@4.19.0/lib/xterm.js":                "node_modules/xterm4/lib/xterm.js",
		"/npm/xterm@4.19.0/css/xterm.css":               "node_modules/xterm4/css/xterm.css",
		"/npm/socket.io-client@4.0.1/dist/socket.io.js": "node_modules/sio-4.0.1/dist/socket.io.js",
	}
	for _, f := range files {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			return nil, err
		}
	}
	c := &fakeCDN{fetched: map[string]int{}}
	c.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, ok := files[r.URL.Path]
		if !ok || r.Host != cdnHost {
			http.NotFound(w, r)
			return
		}
		c.mu.Lock()
		c.fetched[r.URL.Path]++
		c.mu.Unlock()
		http.ServeFile(w, r, filepath.Join(dir, f))
	}))
	// Chromium checks the certificate before a context that ignores HTTPS
	// errors proceeds; the failed handshakes are expected.
	c.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	c.srv.StartTLS()
	c.addr = c.srv.Listener.Addr().String()
	return c, nil
}

func (c *fakeCDN) count(path string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fetched[path]
}

// page is a browser tab in a context of its own, closed when the test
// ends. When the test has failed by then, a screenshot is saved under
// artifacts/ and the page's console is logged.
type page struct {
	t     testing.TB
	b     *browser
	ctx   int
	id    int
	frame string // when set, eval and waitFor run in the first frame whose URL starts with it
}

// pageOptions configure a page's browser context.
type pageOptions struct {
	Width, Height     int
	Permissions       []string // e.g. clipboard-read, clipboard-write
	IgnoreHTTPSErrors bool     // for the fake CDN's certificate
}

func newPage(t testing.TB, o pageOptions) *page {
	t.Helper()
	b := getBrowser(t)
	if o.Width == 0 {
		o.Width, o.Height = 1000, 600
	}
	v, err := b.call(30*time.Second, "newContext", map[string]any{
		"viewport":          map[string]int{"width": o.Width, "height": o.Height},
		"permissions":       o.Permissions,
		"ignoreHTTPSErrors": o.IgnoreHTTPSErrors,
	})
	if err != nil {
		t.Fatal(err)
	}
	var c struct{ Ctx int }
	json.Unmarshal(v, &c)
	t.Cleanup(func() {
		if _, err := b.call(30*time.Second, "closeContext", map[string]any{"ctx": c.Ctx}); err != nil {
			t.Error(err)
		}
	})
	v, err = b.call(30*time.Second, "newPage", map[string]any{"ctx": c.Ctx})
	if err != nil {
		t.Fatal(err)
	}
	var pg struct{ Page int }
	json.Unmarshal(v, &pg)
	p := &page{t: t, b: b, ctx: c.Ctx, id: pg.Page}
	t.Cleanup(p.reportFailure) // runs before the context is closed
	return p
}

// artifactName turns a test name into a file name.
var artifactName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

func (p *page) reportFailure() {
	if !p.t.Failed() {
		return
	}
	path, err := filepath.Abs(filepath.Join("artifacts", artifactName.ReplaceAllString(p.t.Name(), "_")+".png"))
	if err == nil {
		err = os.MkdirAll(filepath.Dir(path), 0o755)
	}
	if err == nil {
		_, err = p.b.call(30*time.Second, "screenshot", map[string]any{"page": p.id, "path": path})
	}
	if err != nil {
		p.t.Logf("screenshot: %v", err)
	} else {
		p.t.Logf("screenshot of the failed page: %s", path)
	}
	if v, err := p.b.call(10*time.Second, "console", map[string]any{"page": p.id}); err == nil {
		var lines []string
		json.Unmarshal(v, &lines)
		p.t.Logf("browser console:\n%s", strings.Join(lines, "\n"))
	}
	if v, err := p.b.call(10*time.Second, "frames", map[string]any{"page": p.id}); err == nil {
		p.t.Logf("frames: %s", v)
	}
}

// inFrame returns the page with eval and waitFor directed at a frame.
func (p *page) inFrame(urlPrefix string) *page {
	q := *p
	q.frame = urlPrefix
	return &q
}

func (p *page) params(m map[string]any) map[string]any {
	m["page"] = p.id
	if p.frame != "" {
		m["frame"] = p.frame
	}
	return m
}

// navigate loads url in the page and returns the main document's status.
func (p *page) navigate(url string) int {
	p.t.Helper()
	v, err := p.b.call(60*time.Second, "goto", map[string]any{"page": p.id, "url": url})
	if err != nil {
		p.t.Fatal(err)
	}
	var r struct{ Status int }
	json.Unmarshal(v, &r)
	return r.Status
}

// eval runs the JavaScript function fn(arg) in the page (or its frame) and
// decodes what it returns into out, if out is not nil.
func (p *page) eval(fn string, arg any, out any) {
	p.t.Helper()
	v, err := p.b.call(30*time.Second, "eval", p.params(map[string]any{"fn": fn, "arg": arg}))
	if err != nil {
		p.t.Fatal(err)
	}
	if out != nil {
		if err := json.Unmarshal(v, out); err != nil {
			p.t.Fatalf("eval %s: %v", fn, err)
		}
	}
}

// waitTimeout bounds every wait for something to show in the page.
const waitTimeout = 20 * time.Second

// waitFor waits until fn(arg) is truthy in the page and returns that
// value; on timeout it fails the test with what, and the screen.
func (p *page) waitFor(what, fn string, arg any) json.RawMessage {
	p.t.Helper()
	v, err := p.b.call(waitTimeout+10*time.Second, "waitFor",
		p.params(map[string]any{"fn": fn, "arg": arg, "timeoutMs": waitTimeout.Milliseconds()}))
	if err != nil {
		p.t.Fatalf("waiting for %s: %v\nscreen:\n%s", what, err, p.screenDump())
	}
	return v
}

// click clicks the element that matches the CSS selector, as a user would
// to give the terminal the keyboard focus.
func (p *page) click(selector string) {
	p.t.Helper()
	if _, err := p.b.call(30*time.Second, "click", p.params(map[string]any{"selector": selector})); err != nil {
		p.t.Fatal(err)
	}
}

func (p *page) typeText(text string) {
	p.t.Helper()
	if _, err := p.b.call(30*time.Second, "type", map[string]any{"page": p.id, "text": text}); err != nil {
		p.t.Fatal(err)
	}
}

func (p *page) press(key string) {
	p.t.Helper()
	if _, err := p.b.call(30*time.Second, "press", map[string]any{"page": p.id, "key": key}); err != nil {
		p.t.Fatal(err)
	}
}

func (p *page) setViewport(width, height int) {
	p.t.Helper()
	if _, err := p.b.call(30*time.Second, "viewport", map[string]any{"page": p.id, "width": width, "height": height}); err != nil {
		p.t.Fatal(err)
	}
}

// waitConsole waits for a console message of the page (any frame) that
// contains every one of parts.
func (p *page) waitConsole(parts ...string) {
	p.t.Helper()
	_, err := p.b.call(waitTimeout+10*time.Second, "waitConsole",
		map[string]any{"page": p.id, "includes": parts, "timeoutMs": waitTimeout.Milliseconds()})
	if err != nil {
		p.t.Fatal(err)
	}
}

// The terminal: the stock page exposes window.alfresco.term, a Flask-era
// page its global term. Both are xterm.js (6 and 4), whose buffer API the
// helpers below use.

// termJS is a JavaScript expression for the page's xterm.js Terminal.
const termJS = `((window.alfresco && window.alfresco.term) || window.term)`

// linesJS is a JavaScript expression for the terminal's buffer, one string
// per row with trailing white space removed (translateToString(true) keeps
// spaces the remote wrote); a wide character is one string character though
// it fills two cells.
const linesJS = `(() => {
	const b = ` + termJS + `.buffer.active;
	const out = [];
	for (let i = 0; i < b.length; i++) out.push(b.getLine(i).translateToString(true).trimEnd());
	return out;
})()`

// screenDump is the terminal's buffer for failure messages.
func (p *page) screenDump() string {
	v, err := p.b.call(10*time.Second, "eval", p.params(map[string]any{"fn": `() => ` + linesJS + `.join("\n").trimEnd()`}))
	if err != nil {
		return fmt.Sprintf("(unreadable: %v)", err)
	}
	var s string
	json.Unmarshal(v, &s)
	return s
}

// waitPrompt waits until the cursor stands right after a fresh prompt at
// the end of its row (a page may have left text before the first one).
func (p *page) waitPrompt() {
	p.t.Helper()
	p.waitFor("the prompt", `() => {
		const b = `+termJS+`.buffer.active;
		const line = b.getLine(b.baseY + b.cursorY).translateToString(true).trimEnd();
		return line.endsWith("alfresco-test$") && b.cursorX === line.length + 1;
	}`, nil)
}

// waitLine waits until a row of the terminal reads exactly want and
// returns its row index in the buffer.
func (p *page) waitLine(want string) int {
	p.t.Helper()
	v := p.waitFor(fmt.Sprintf("a line %q", want), `(want) => {
		const i = `+linesJS+`.indexOf(want);
		return i >= 0 ? {row: i} : null;
	}`, want)
	var r struct{ Row int }
	json.Unmarshal(v, &r)
	return r.Row
}

// run types a command line and presses Enter.
func (p *page) run(command string) {
	p.t.Helper()
	p.typeText(command)
	p.press("Enter")
}

// recordInput wraps the page's socket.emit to record every ssh-input the
// page sends from now on, in window.__sentInput.
func (p *page) recordInput() {
	p.t.Helper()
	p.eval(`() => {
		const s = window.alfresco.socket;
		const emit = s.emit;
		window.__sentInput = [];
		s.emit = function (event, ...args) {
			if (event === "ssh-input") window.__sentInput.push(args[0] && args[0].input);
			return emit.call(this, event, ...args);
		};
	}`, nil, nil)
}

func (p *page) sentInput() []string {
	p.t.Helper()
	var sent []string
	p.eval(`() => window.__sentInput`, nil, &sent)
	return sent
}

// randomTag is a short random string that marks one test's output.
func randomTag() string {
	b := make([]byte, 4)
	rand.Read(b)
	return hex.EncodeToString(b)
}
