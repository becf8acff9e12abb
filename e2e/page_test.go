package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alfresco-ssh/alfresco-ssh/internal/sshdtest"
)

// Browser tests: the stock terminal page, the page inside a cross-origin
// <iframe>, and Flask-era pages given with --template, in headless Chromium
// against the real binary and a real sshd.

// openTerminal loads a terminal page URL and waits for the session and
// the prompt.
func openTerminal(t *testing.T, p *page, url string) {
	t.Helper()
	if status := p.navigate(url); status != http.StatusOK {
		t.Fatalf("GET %s: got status %d, want 200", url, status)
	}
	p.waitFor("the session to be ready", `() => window.alfresco && window.alfresco.state === "ready"`, nil)
	p.waitPrompt()
}

// checkEcho types an echo whose output the shell computes, so that only
// its output line can match.
func checkEcho(t *testing.T, p *page) {
	t.Helper()
	tag := randomTag()
	p.run("echo hello-" + tag + "-$((6*7))")
	p.waitLine("hello-" + tag + "-42")
	p.waitPrompt()
}

// checkSize runs stty size and checks it against the page's terminal size.
func checkSize(t *testing.T, p *page) (rows, cols int) {
	t.Helper()
	var size struct{ Rows, Cols int }
	p.eval(`() => ({rows: `+termJS+`.rows, cols: `+termJS+`.cols})`, nil, &size)
	p.run("stty size")
	p.waitLine(fmt.Sprintf("%d %d", size.Rows, size.Cols))
	p.waitPrompt()
	return size.Rows, size.Cols
}

// redAtJS tells whether the text on the row is drawn in bright red (SGR
// 91, palette colour 9) from its first character.
const redAtJS = `(arg) => {
	const line = ` + termJS + `.buffer.active.getLine(arg.row);
	const col = line.translateToString(false).indexOf(arg.text);
	if (col < 0) return false;
	const cell = line.getCell(col);
	return cell.isFgPalette() && cell.getFgColor() === 9;
}`

func TestBrowser(t *testing.T) {
	getBrowser(t)
	sshd := sshdtest.Start(t)
	g := startGateway(t)

	t.Run("generation 2", func(t *testing.T) {
		p := newPage(t, pageOptions{})
		openTerminal(t, p, g.url+"/?connection="+g.createCredentials(t, login(sshd)))
		checkEcho(t, p)
	})

	t.Run("generation 1", func(t *testing.T) {
		_, url := g.createSession(t, login(sshd))
		p := newPage(t, pageOptions{})
		openTerminal(t, p, url)
		checkEcho(t, p)
	})

	t.Run("resize", func(t *testing.T) {
		p := newPage(t, pageOptions{Width: 1000, Height: 600})
		openTerminal(t, p, g.url+"/?connection="+g.createCredentials(t, login(sshd)))
		rows, cols := checkSize(t, p) // the PTY was opened at the page's size
		for _, vp := range []struct{ w, h int }{{640, 360}, {1280, 760}} {
			p.setViewport(vp.w, vp.h)
			p.waitFor(fmt.Sprintf("the terminal to refit to %dx%d pixels", vp.w, vp.h),
				`(old) => { const t = `+termJS+`; return t.rows !== old.rows && t.cols !== old.cols; }`,
				map[string]int{"rows": rows, "cols": cols})
			rows, cols = checkSize(t, p)
		}
	})

	t.Run("clipboard", func(t *testing.T) {
		p := newPage(t, pageOptions{Permissions: []string{"clipboard-read", "clipboard-write"}})
		openTerminal(t, p, g.url+"/?connection="+g.createCredentials(t, login(sshd)))

		// Paste: Ctrl+Shift+V sends the clipboard to the shell.
		tag := randomTag()
		p.eval(`(text) => navigator.clipboard.writeText(text)`, "echo pasted-"+tag+"-$((3*5))", nil)
		p.press("Control+Shift+V")
		p.waitFor("the pasted command line", `(want) => {
			const b = `+termJS+`.buffer.active;
			return b.getLine(b.baseY + b.cursorY).translateToString(true).trimEnd() === want;
		}`, "alfresco-test$ echo pasted-"+tag+"-$((3*5))")
		p.press("Enter")
		p.waitLine("pasted-" + tag + "-15")
		p.waitPrompt()

		// Copy: Ctrl+Shift+X puts the selection on the clipboard and sends
		// nothing to the shell.
		p.run("echo copy-" + tag + "-$((2+3))")
		want := "copy-" + tag + "-5"
		row := p.waitLine(want)
		p.waitPrompt()
		p.eval(`() => navigator.clipboard.writeText("before the copy")`, nil, nil)
		var selected string
		p.eval(`(a) => { const t = `+termJS+`; t.select(0, a.row, a.len); return t.getSelection(); }`,
			map[string]int{"row": row, "len": len(want)}, &selected)
		if selected != want {
			t.Fatalf("got selection %q, want %q", selected, want)
		}
		p.recordInput()
		p.press("Control+Shift+X")
		p.waitFor("the selection on the clipboard", `async (want) => (await navigator.clipboard.readText()) === want`, want)
		if sent := p.sentInput(); len(sent) != 0 {
			t.Errorf("Ctrl+Shift+X sent %q to the shell, want nothing", sent)
		}
		checkEcho(t, p) // the shell's input line is still clean
	})

	t.Run("exit", func(t *testing.T) {
		// An sshd of its own: the sessions of the pages closed above are
		// detached for the resume window, not gone.
		sshd := sshdtest.Start(t)
		p := newPage(t, pageOptions{})
		openTerminal(t, p, g.url+"/?connection="+g.createCredentials(t, login(sshd)))
		p.run("exit")
		row := p.waitLine("Connection closed.")
		p.waitFor("the page to end the session", `() => window.alfresco.state === "ended" && !window.alfresco.socket.connected`, nil)
		var red bool
		p.eval(redAtJS, map[string]any{"row": row, "text": "Connection closed."}, &red)
		if !red {
			t.Error("the closing message is not red")
		}
		// Typing now must send nothing: no ssh-input emitted, none queued
		// in the client for a reconnection, and nothing on the screen.
		p.recordInput()
		p.run("echo after-exit")
		var state struct {
			Sent     []string
			Buffered int
			Screen   string
		}
		p.eval(`() => ({sent: window.__sentInput, buffered: window.alfresco.socket.sendBuffer.length,
			screen: `+linesJS+`.join("\n")})`, nil, &state)
		if len(state.Sent) != 0 || state.Buffered != 0 {
			t.Errorf("after the end, typing emitted %q with %d packets buffered, want nothing", state.Sent, state.Buffered)
		}
		if strings.Contains(state.Screen, "after-exit") {
			t.Errorf("after the end, typed text reached the screen:\n%s", state.Screen)
		}
		if err := sshd.WaitNoChildren(10 * time.Second); err != nil {
			t.Error(err)
		}
	})

	t.Run("wrong password", func(t *testing.T) {
		wrong := login(sshd)
		wrong["password"] = "wrong-" + sshd.Password
		p := newPage(t, pageOptions{})
		p.navigate(g.url + "/?connection=" + g.createCredentials(t, wrong))
		p.waitFor("the page to end the session", `() => window.alfresco && window.alfresco.state === "ended"`, nil)
		row := p.waitFor("the reason on the screen", `() => {
			const i = `+linesJS+`.findIndex((l) => l.includes("authentication failed"));
			return i >= 0 ? {row: i} : null;
		}`, nil)
		var r struct{ Row int }
		json.Unmarshal(row, &r)
		if r.Row != 0 {
			t.Errorf("got the reason on row %d, want the first row of the blank screen", r.Row)
		}
		var red bool
		p.eval(redAtJS, map[string]any{"row": r.Row, "text": "Connection failed"}, &red)
		if !red {
			t.Error("the reason is not red")
		}
		if screen := p.screenDump(); strings.Contains(screen, "Wait...") {
			t.Errorf("the screen still says Wait...:\n%s", screen)
		}
	})

	t.Run("binary output", func(t *testing.T) {
		p := newPage(t, pageOptions{})
		openTerminal(t, p, g.url+"/?connection="+g.createCredentials(t, login(sshd)))
		checkBinaryOutput(t, p)
	})

	t.Run("multi-byte output", func(t *testing.T) {
		p := newPage(t, pageOptions{})
		openTerminal(t, p, g.url+"/?connection="+g.createCredentials(t, login(sshd)))
		lines := []string{
			"CJK: 世界你好 日本語のテキスト 한국어",
			"emoji: 🙂 🚀 🎉 ok",
			"box: ┌──┬──┐ │ab│cd│ └──┴──┘ ═║╬",
			"accents: é ü ж ñ → ✓ λ",
		}
		tag := randomTag()
		// printf with \x escapes: the command line is ASCII, whatever the
		// remote locale; the output is UTF-8 bytes.
		var esc strings.Builder
		for _, l := range append(append([]string{"mb-begin-" + tag}, lines...), "mb-end-"+tag) {
			for _, c := range []byte(l) {
				if c >= 0x80 {
					fmt.Fprintf(&esc, `\x%02x`, c)
				} else {
					esc.WriteByte(c)
				}
			}
			esc.WriteString(`\n`)
		}
		p.run("printf '" + esc.String() + "'")
		first := p.waitLine("mb-begin-" + tag)
		end := p.waitLine("mb-end-" + tag)
		if end != first+len(lines)+1 {
			t.Fatalf("got the end marker on row %d, want %d (the lines after row %d)\n%s", end, first+len(lines)+1, first, p.screenDump())
		}
		// Each row, cell by cell: the characters, and the cells each fills.
		var rows [][]struct {
			C string
			W int
		}
		p.eval(`(a) => {
			const b = `+termJS+`.buffer.active;
			const out = [];
			for (let y = a.from; y < a.to; y++) {
				const line = b.getLine(y), cells = [];
				for (let x = 0; x < line.length; x++) {
					const c = line.getCell(x);
					if (c.getWidth() > 0) cells.push({c: c.getChars(), w: c.getWidth()});
				}
				while (cells.length && cells[cells.length - 1].c === "") cells.pop();
				out.push(cells);
			}
			return out;
		}`, map[string]int{"from": first + 1, "to": end}, &rows)
		for i, want := range lines {
			var got strings.Builder
			var gotWidths, wantWidths []int
			for _, c := range rows[i] {
				if c.C == "" {
					c.C = " "
				}
				got.WriteString(c.C)
				gotWidths = append(gotWidths, c.W)
			}
			for _, r := range want {
				wantWidths = append(wantWidths, cellWidth(r))
			}
			if got.String() != want {
				t.Errorf("row %d: got %q, want %q", i, got.String(), want)
			} else if fmt.Sprint(gotWidths) != fmt.Sprint(wantWidths) {
				// The remote (glibc wcwidth, East Asian Width W) puts its
				// cursor that many columns further: the rest of the line
				// and every cursor movement on it would be misplaced.
				t.Errorf("row %d %q: got cell widths %v, want %v (the remote's wcwidth)", i, want, gotWidths, wantWidths)
			}
		}
	})
}

// checkBinaryOutput: the stock page opts in to binary output, so a flood
// of multi-byte text comes as bytes, split between messages anywhere, and
// xterm.js decodes it whole: every line on the screen and in the
// scrollback is intact.
func checkBinaryOutput(t *testing.T, p *page) {
	t.Helper()
	p.eval(`() => {
		window.__output = {binary: 0, text: 0};
		window.alfresco.socket.on("ssh-output", (d) => { window.__output[d.output instanceof ArrayBuffer ? "binary" : "text"]++; });
	}`, nil, nil)
	const n = 3000
	tag := randomTag()
	// 2 MB of filler first: reads of 8 KiB or more (which go as bytes)
	// come once the remote is ahead of the gateway, which a longer flood
	// makes sure of.
	p.run(fmt.Sprintf(`head -c 2000000 /dev/zero | tr '\0' x; echo; awk 'BEGIN { for (i = 1; i <= %d; i++) printf "\303\251\342\202\254\360\237\230\200 %%d\n", i }'; echo done-%s`, n, tag))
	p.waitLine("done-" + tag)
	var lines []string
	p.eval(`() => `+linesJS, nil, &lines)
	next := 0
	for _, l := range lines {
		if next == 0 && l == "é€😀 1" {
			next = 1
		}
		if next > 0 && next <= n {
			if want := fmt.Sprintf("é€😀 %d", next); l != want {
				t.Fatalf("line %d: got %q, want %q", next, l, want)
			}
			next++
		}
	}
	if next != n+1 {
		t.Fatalf("got %d intact lines of %d", next-1, n)
	}
	var counts struct{ Binary, Text int }
	p.eval(`() => window.__output`, nil, &counts)
	if counts.Binary == 0 || counts.Text == 0 {
		t.Errorf("got %d binary and %d text output messages, want the flood as bytes, the echoes as text", counts.Binary, counts.Text)
	}
}

// cellWidth is how many terminal cells a character of the multi-byte test
// fills, as the remote's wcwidth counts them (glibc, Unicode East Asian
// Width): two for wide CJK characters and emoji, one for the rest.
func cellWidth(r rune) int {
	switch {
	case r >= 0x1100 && r <= 0x115f, // Hangul Jamo
		r >= 0x2e80 && r <= 0xa4cf, // CJK, kana
		r >= 0xac00 && r <= 0xd7a3, // Hangul syllables
		r >= 0xf900 && r <= 0xfaff,
		r >= 0xff00 && r <= 0xff60,
		r >= 0x1f300 && r <= 0x1f64f, // emoji: pictographs, emoticons,
		r >= 0x1f680 && r <= 0x1f6ff, // transport and map symbols,
		r >= 0x1f900 && r <= 0x1f9ff: // supplemental symbols
		return 2
	}
	return 1
}

// TestBrowserEmbedding: the terminal page inside an <iframe> of a page on
// another origin works by default, and is refused when the operator
// restricts frame-ancestors.
func TestBrowserEmbedding(t *testing.T) {
	getBrowser(t)
	sshd := sshdtest.Start(t)

	t.Run("any origin by default", func(t *testing.T) {
		g := startGateway(t)
		url := g.url + "/?connection=" + g.createCredentials(t, login(sshd))
		if csp := header(t, url, "Content-Security-Policy"); cspDirective(csp, "frame-ancestors") != "" {
			t.Errorf("got Content-Security-Policy %q by default, want no frame-ancestors in it", csp)
		}
		parent := startEmbedder(t).url(url)
		p := newPage(t, pageOptions{}) // closed before the parent's server
		p.navigate(parent)
		f := p.inFrame(g.url)
		f.waitFor("the framed session to be ready", `() => window.alfresco && window.alfresco.state === "ready"`, nil)
		var origins struct {
			Framed     bool
			Frame, Top string
		}
		f.eval(`() => ({framed: window.top !== window, frame: location.origin, top: location.ancestorOrigins[0]})`, nil, &origins)
		if !origins.Framed || origins.Frame != g.url || !strings.HasPrefix(parent, origins.Top+"/") {
			t.Fatalf("got frame origin %q (framed %v) in %q, want %q inside %q", origins.Frame, origins.Framed, origins.Top, g.url, parent)
		}
		f.click(".xterm")
		f.waitPrompt()
		checkEcho(t, f)
	})

	t.Run("self only", func(t *testing.T) {
		g := startGateway(t, "--frame-ancestors", "'self'")
		id := g.createCredentials(t, login(sshd))
		url := g.url + "/?connection=" + id
		if csp := header(t, url, "Content-Security-Policy"); cspDirective(csp, "frame-ancestors") != "frame-ancestors 'self'" {
			t.Errorf("got Content-Security-Policy %q, want frame-ancestors 'self' in it", csp)
		}
		parent := startEmbedder(t).url(url)
		p := newPage(t, pageOptions{})
		p.navigate(parent)
		// Chromium reports the refusal on the console and shows an error
		// page in the frame instead.
		p.waitConsole("violates the following Content Security Policy directive", "frame-ancestors 'self'")
		var frames []struct{ URL string }
		v, err := p.b.call(10*time.Second, "frames", map[string]any{"page": p.id})
		if err != nil {
			t.Fatal(err)
		}
		json.Unmarshal(v, &frames)
		for _, f := range frames {
			if strings.HasPrefix(f.URL, g.url) {
				var loaded bool
				p.inFrame(g.url).eval(`() => typeof window.alfresco !== "undefined"`, nil, &loaded)
				if loaded {
					t.Errorf("the terminal loaded in the refused frame %s", f.URL)
				}
			}
		}
		// The terminal never started: the credentials are still unused,
		// and work in a window of their own.
		openTerminal(t, p, url)
		checkEcho(t, p)
	})
}

// cspDirective returns the directive of a Content-Security-Policy that
// has the name, or "".
func cspDirective(csp, name string) string {
	for d := range strings.SplitSeq(csp, ";") {
		if f := strings.Fields(d); len(f) > 0 && strings.EqualFold(f[0], name) {
			return strings.Join(f, " ")
		}
	}
	return ""
}

// header fetches url and returns one response header.
func header(t testing.TB, url, name string) string {
	t.Helper()
	res, err := httpClient.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: got %d, want 200", url, res.StatusCode)
	}
	return res.Header.Get(name)
}

// TestFlaskTemplates runs pages written for the Flask server, as they are,
// through --template: xterm.js 4 and socket.io-client 4.0.1 from the (fake)
// CDN, the id written Jinja-style.
func TestFlaskTemplates(t *testing.T) {
	b := getBrowser(t)
	sshd := sshdtest.Start(t)
	cdnFiles := []string{
		"/npm/xterm@4.19.0/lib/xterm.js",
		"/npm/xterm@4.19.0/css/xterm.css",
		"/npm/socket.io-client@4.0.1/dist/socket.io.js",
	}

	// fixture starts a gateway with the fixture page and checks that the
	// page is served as written, with only the id filled in.
	fixture := func(t *testing.T, name, placeholder string) (*gateway, func(id, url string)) {
		path, err := filepath.Abs(filepath.Join("fixtures", name))
		if err != nil {
			t.Fatal(err)
		}
		src, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(src), placeholder) {
			t.Fatalf("%s does not hold %s", name, placeholder)
		}
		g := startGateway(t, "--template", path)
		return g, func(id, url string) {
			res, err := httpClient.Get(url)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			body, err := io.ReadAll(res.Body)
			if err != nil {
				t.Fatal(err)
			}
			if want := strings.ReplaceAll(string(src), placeholder, id); string(body) != want {
				t.Errorf("GET %s: got a page that differs from %s with the id filled in:\n%s", url, name, truncate(string(body), 3000))
			}
		}
	}

	checkCDN := func(t *testing.T, before []int) {
		t.Helper()
		for i, f := range cdnFiles {
			if b.cdn.count(f) <= before[i] {
				t.Errorf("the page did not load https://%s%s", cdnHost, f)
			}
		}
	}
	cdnCounts := func() []int {
		var n []int
		for _, f := range cdnFiles {
			n = append(n, b.cdn.count(f))
		}
		return n
	}

	t.Run("generation 2", func(t *testing.T) {
		g, checkServed := fixture(t, "flask-gen2.html", "{{ credentials_uuid }}")
		id := g.createCredentials(t, login(sshd))
		url := g.url + "/?connection=" + id
		checkServed(id, url)
		before := cdnCounts()
		p := newPage(t, pageOptions{IgnoreHTTPSErrors: true})
		if status := p.navigate(url); status != http.StatusOK {
			t.Fatalf("GET %s: got %d, want 200", url, status)
		}
		checkCDN(t, before)
		p.waitFor("the Flask page's socket", `() => window.term && window.socket && window.socket.connected`, nil)
		p.waitPrompt()
		checkEcho(t, p)
		checkSize(t, p)
	})

	t.Run("generation 1", func(t *testing.T) {
		g, checkServed := fixture(t, "flask-gen1.html", "{{ create_session_id }}")
		id, url := g.createSession(t, login(sshd))
		checkServed(id, url)
		before := cdnCounts()
		p := newPage(t, pageOptions{Width: 900, Height: 500, IgnoreHTTPSErrors: true})
		if status := p.navigate(url); status != http.StatusOK {
			t.Fatalf("GET %s: got %d, want 200", url, status)
		}
		checkCDN(t, before)
		p.waitFor("the Flask page's socket", `() => window.term && window.socket && window.socket.connected`, nil)
		p.waitPrompt()
		p.click("#terminal") // this page does not focus the terminal itself
		// The page sent its size before start-session; the PTY must have
		// been opened at it (900x500 px is 100x29 cells, not 80x24).
		if rows, cols := checkSize(t, p); rows != 29 || cols != 100 {
			t.Errorf("got a %dx%d terminal, want the page's 100x29", cols, rows)
		}
		checkEcho(t, p)
	})
}
