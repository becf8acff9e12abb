package e2e

import (
	"encoding/json"
	"fmt"
	"html"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/alfresco-ssh/alfresco-ssh/internal/sshdtest"
)

// embedder serves a parent page, on another origin than the gateway (the
// host name localhost rather than 127.0.0.1, and a port of its own), that
// frames ?frame=URL, records every message the frame posts in
// window.__messages and posts to it with window.send(message).
type embedder struct {
	origin string // "http://localhost:port"
}

func startEmbedder(t testing.TB) *embedder {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>VM lab</title>
<script>
window.__messages = [];
window.addEventListener("message", (e) => {
  if (e.source === document.getElementById("terminal").contentWindow) window.__messages.push({origin: e.origin, data: e.data});
});
window.send = (m) => document.getElementById("terminal").contentWindow.postMessage(m, "*");
</script></head>
<body style="margin:0">
<h1 style="font:16px sans-serif">Lab machine 1</h1>
<iframe id="terminal" src="%s" width="900" height="450" allow="clipboard-read; clipboard-write"></iframe>
</body></html>`, html.EscapeString(r.URL.Query().Get("frame")))
	}))
	t.Cleanup(srv.Close)
	return &embedder{origin: fmt.Sprintf("http://localhost:%d", srv.Listener.Addr().(*net.TCPAddr).Port)}
}

// url is the parent page framing frameURL.
func (e *embedder) url(frameURL string) string {
	return e.origin + "/?frame=" + url.QueryEscape(frameURL)
}

// embedMessage is what the page posts to its parent.
type embedMessage struct {
	Source, Type, Title, Reason string
	Retryable                   *bool
}

// parentMessages returns what the parent has received so far, checking
// that each came from the gateway's origin and names its source.
func parentMessages(t *testing.T, p *page, gatewayOrigin string) []embedMessage {
	t.Helper()
	var raw []struct {
		Origin string
		Data   json.RawMessage
	}
	p.eval(`() => window.__messages`, nil, &raw)
	var out []embedMessage
	for _, r := range raw {
		var m embedMessage
		json.Unmarshal(r.Data, &m)
		if r.Origin != gatewayOrigin || m.Source != "alfresco-ssh" {
			t.Errorf("got message %s from %s, want source alfresco-ssh from %s", r.Data, r.Origin, gatewayOrigin)
		}
		out = append(out, m)
	}
	return out
}

// waitParentMessage waits until the parent has a message of the type and
// returns it.
func waitParentMessage(t *testing.T, p *page, typ string) embedMessage {
	t.Helper()
	v := p.waitFor("a "+typ+" message in the parent", `(type) => window.__messages.map((m) => m.data).find((d) => d && d.type === type)`, typ)
	var m embedMessage
	json.Unmarshal(v, &m)
	return m
}

// TestBrowserEmbeddingAPI: a parent page on an origin listed in
// --embed-origins hears from the terminal page and drives it; one on
// another origin hears nothing and is ignored.
func TestBrowserEmbeddingAPI(t *testing.T) {
	getBrowser(t)
	sshd := sshdtest.Start(t)
	parent := startEmbedder(t)

	t.Run("listed origin", func(t *testing.T) {
		g := startGateway(t, "--embed-origins", "https://lab.example.com,"+parent.origin)
		p := newPage(t, pageOptions{})
		p.navigate(parent.url(g.url + "/?connection=" + g.createCredentials(t, login(sshd))))
		f := p.inFrame(g.url)
		f.waitFor("the framed session to be ready", `() => window.alfresco && window.alfresco.state === "ready"`, nil)
		waitParentMessage(t, p, "ready")

		// input: typed into the terminal, as if by the user.
		tag := randomTag()
		p.eval(`(cmd) => window.send({target: "alfresco-ssh", type: "input", data: cmd + "\r"})`, "echo from-parent-"+tag+"-$((2*3))", nil)
		f.waitLine("from-parent-" + tag + "-6")
		f.waitPrompt()

		// title: the remote's window title reaches the parent.
		f.run(`printf '\033]0;%s\007' title-` + tag)
		p.waitFor("the title in the parent", `(title) => window.__messages.some((m) => m.data && m.data.type === "title" && m.data.title === title)`, "title-"+tag)

		// focus: the terminal takes the keyboard focus.
		f.eval(`() => document.activeElement.blur()`, nil, nil)
		p.eval(`() => window.send({target: "alfresco-ssh", type: "focus"})`, nil, nil)
		f.waitFor("the terminal to have the focus", `() => document.activeElement && document.activeElement.classList.contains("xterm-helper-textarea")`, nil)

		// theme and font: applied, and the terminal refits to the font.
		var before map[string]int
		f.eval(`() => ({rows: `+termJS+`.rows, cols: `+termJS+`.cols})`, nil, &before)
		p.eval(`() => {
			window.send({target: "alfresco-ssh", type: "theme", theme: {background: "#fdf6e3", foreground: "#073642"}});
			window.send({target: "alfresco-ssh", type: "font", size: 22});
		}`, nil, nil)
		f.waitFor("the theme and the font", `(old) => {
			const t = `+termJS+`;
			return t.options.theme.background === "#fdf6e3" && t.options.theme.foreground === "#073642" &&
				getComputedStyle(document.body).backgroundColor === "rgb(253, 246, 227)" &&
				t.options.fontSize === 22 && t.rows < old.rows && t.cols < old.cols;
		}`, before)
		checkSize(t, f) // the remote follows the new size

		// closed: the reason without ANSI, and whether to retry.
		f.run("exit")
		m := waitParentMessage(t, p, "closed")
		if m.Reason != "Connection closed." || m.Retryable == nil || *m.Retryable {
			t.Errorf("got closed %+v, want reason %q and retryable false", m, "Connection closed.")
		}
		var types []string
		for _, m := range parentMessages(t, p, g.url) {
			if m.Type != "title" || len(types) == 0 || types[len(types)-1] != "title" {
				types = append(types, m.Type)
			}
		}
		if want := "[ready title closed]"; fmt.Sprint(types) != want {
			t.Errorf("got messages %v (repeated titles once), want %s", types, want)
		}
	})

	t.Run("other origin", func(t *testing.T) {
		g := startGateway(t, "--embed-origins", "https://lab.example.com")
		p := newPage(t, pageOptions{})
		p.navigate(parent.url(g.url + "/?connection=" + g.createCredentials(t, login(sshd))))
		f := p.inFrame(g.url)
		f.waitFor("the framed session to be ready", `() => window.alfresco && window.alfresco.state === "ready"`, nil)
		f.click(".xterm")
		f.waitPrompt()
		f.recordInput()
		var theme string
		f.eval(`() => {
			window.__barrier = false;
			window.addEventListener("message", (e) => { if (e.data && e.data.barrier) window.__barrier = true; });
			return JSON.stringify(`+termJS+`.options.theme);
		}`, nil, &theme)
		// Messages from one window to another arrive in order: once the
		// barrier is in, the page has seen (and ignored) the others.
		p.eval(`() => {
			window.send({target: "alfresco-ssh", type: "input", data: "echo ignored\r"});
			window.send({target: "alfresco-ssh", type: "theme", theme: {background: "#ffffff"}});
			window.send({target: "alfresco-ssh", type: "font", size: 30});
			window.send({barrier: true});
		}`, nil, nil)
		f.waitFor("the barrier message", `() => window.__barrier`, nil)
		var after struct {
			Theme    string
			FontSize int
		}
		f.eval(`() => ({theme: JSON.stringify(`+termJS+`.options.theme), fontSize: `+termJS+`.options.fontSize})`, nil, &after)
		if sent := f.sentInput(); len(sent) != 0 || after.Theme != theme || after.FontSize == 30 {
			t.Errorf("a parent of another origin got input %q, theme %s (was %s), font size %d through", sent, after.Theme, theme, after.FontSize)
		}
		// The page's own messages would have gone out by the time it has
		// ended; one more from the frame, in order after them, is the
		// barrier on the parent's side.
		f.run("exit")
		f.waitFor("the page to end the session", `() => window.alfresco.state === "ended"`, nil)
		f.eval(`() => window.parent.postMessage({barrier: true}, "*")`, nil, nil)
		p.waitFor("the frame's barrier", `() => window.__messages.some((m) => m.data && m.data.barrier)`, nil)
		var got []json.RawMessage
		p.eval(`() => window.__messages.map((m) => m.data).filter((d) => !d.barrier)`, nil, &got)
		if len(got) != 0 {
			t.Errorf("a parent of another origin got messages %s, want none", got)
		}
	})

	t.Run("theme and font size in the URL", func(t *testing.T) {
		g := startGateway(t)
		p := newPage(t, pageOptions{})
		openTerminal(t, p, g.url+"/?connection="+g.createCredentials(t, login(sshd))+"&theme=light&font-size=20")
		var got struct {
			Background, Body string
			FontSize         int
		}
		p.eval(`() => ({background: `+termJS+`.options.theme.background, fontSize: `+termJS+`.options.fontSize,
			body: getComputedStyle(document.body).backgroundColor})`, nil, &got)
		if got.Background != "#ffffff" || got.Body != "rgb(255, 255, 255)" || got.FontSize != 20 {
			t.Errorf("got background %s (body %s), font size %d; want the light theme, font size 20", got.Background, got.Body, got.FontSize)
		}
		checkEcho(t, p)
	})
}
