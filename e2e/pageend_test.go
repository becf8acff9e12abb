package e2e

import (
	"encoding/json"
	"fmt"
	"regexp"
	"testing"
	"time"

	"github.com/alfresco-ssh/alfresco-ssh/internal/sshdtest"
)

// colourOfJS is the computed colour, as [r, g, b], of the first text on
// the terminal's screen that contains the string arg.
const colourOfJS = `(text) => {
	const rows = document.querySelector(".xterm-rows");
	const walk = document.createTreeWalker(rows, NodeFilter.SHOW_TEXT);
	for (let n = walk.nextNode(); n; n = walk.nextNode()) {
		if (n.textContent.includes(text)) {
			return getComputedStyle(n.parentElement).color.match(/\d+/g).slice(0, 3).map(Number);
		}
	}
	return null;
}`

// cursorShownJS tells whether the DOM renderer draws a cursor.
const cursorShownJS = `() => document.querySelector(".xterm-rows .xterm-cursor") !== null`

// TestBrowserEndedTerminal: an ended terminal looks ended (no cursor, no
// blink, dimmed text) while its red closing message stays bright. (That a
// message on a blank screen starts on the first row: TestBrowser, wrong
// password.)
func TestBrowserEndedTerminal(t *testing.T) {
	getBrowser(t)
	sshd := sshdtest.Start(t)
	g := startGateway(t)

	p := newPage(t, pageOptions{})
	openTerminal(t, p, g.url+"/?connection="+g.createCredentials(t, login(sshd)))
	p.waitFor("a cursor", cursorShownJS, nil)
	// The cursor can be drawn before the prompt is.
	var before []int
	if err := json.Unmarshal(p.waitFor("the prompt drawn", colourOfJS, "alfresco-test$"), &before); err != nil {
		t.Fatal(err)
	}
	p.run("exit")
	p.waitLine("Connection closed.")
	p.waitFor("the page to end the session", `() => window.alfresco.state === "ended"`, nil)
	p.waitFor("the cursor to go", `() => !(`+cursorShownJS+`)()`, nil)
	p.waitFor("the closing message drawn", colourOfJS, "Connection closed.")
	var state struct {
		Blink        bool
		Prompt, Red  []int
		DisableStdin bool
	}
	p.eval(`(c) => ({blink: `+termJS+`.options.cursorBlink, disableStdin: `+termJS+`.options.disableStdin,
		prompt: (`+colourOfJS+`)("alfresco-test$"), red: (`+colourOfJS+`)("Connection closed.")})`, nil, &state)
	if state.Blink || !state.DisableStdin {
		t.Errorf("got cursorBlink %v, disableStdin %v; want false, true", state.Blink, state.DisableStdin)
	}
	if sum(state.Prompt)*10 > sum(before)*6 {
		t.Errorf("got the prompt's colour %v after the end, %v before: want it dimmed", state.Prompt, before)
	}
	if fmt.Sprint(state.Red) != "[239 41 41]" {
		t.Errorf("got the closing message in %v, want bright red [239 41 41]", state.Red)
	}
}

func sum(c []int) int {
	n := 0
	for _, v := range c {
		n += v
	}
	return n
}

// TestBrowserLargePaste pastes through the page's paste function (as
// Ctrl+Shift+V does, after Chromium's clipboard, whose read of 20 MB alone
// takes tens of seconds here): the page sends the paste in ordered chunks
// of at most 64 KiB, and the remote receives it intact (sha256 compared).
func TestBrowserLargePaste(t *testing.T) {
	getBrowser(t)
	sshd := sshdtest.Start(t)
	g := startGateway(t)

	// Each generator makes n characters without line ends (xterm.js turns
	// a pasted "\n" into "\r") from a xorshift sequence, in the page.
	tests := []struct {
		name, gen string
		n         int
	}{
		{"20 MB ASCII", `(n, next) => {
			const codes = new Uint8Array(n);
			for (let i = 0; i < n; i++) codes[i] = 0x20 + (next() % 95);
			return new TextDecoder().decode(codes);
		}`, 20 << 20},
		{"multi-byte", `(n, next) => {
			const chars = ["a", "é", "ж", "世", "🙂", "~"], parts = [];
			for (let i = 0; i < n; i++) parts.push(chars[next() % 6]);
			return parts.join("");
		}`, 1 << 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPage(t, pageOptions{})
			openTerminal(t, p, g.url+"/?connection="+g.createCredentials(t, login(sshd)))
			v, err := p.b.call(130*time.Second, "eval", p.params(map[string]any{"arg": tt.n, "fn": `async (n) => {
				let x = 2463534242;
				const next = () => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return x; };
				window.__paste = (` + tt.gen + `)(n, next);
				const bytes = new TextEncoder().encode(window.__paste);
				const digest = await crypto.subtle.digest("SHA-256", bytes);
				return {bytes: bytes.length, sha256: Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("")};
			}`}))
			if err != nil {
				t.Fatal(err)
			}
			var want struct {
				Bytes  int
				Sha256 string
			}
			json.Unmarshal(v, &want)

			// Raw tty: no line discipline limits, no echo of the paste.
			tag := randomTag()
			p.run(fmt.Sprintf("stty raw -echo; echo PASTE-$((6*7))-%s; head -c %d | sha256sum; stty sane", tag, want.Bytes))
			p.waitLine("PASTE-42-" + tag)
			p.recordInput()
			if _, err := p.b.call(130*time.Second, "eval", p.params(map[string]any{"fn": `() => {
				window.alfresco.term.paste(window.__paste);
				window.__paste = null;
			}`})); err != nil {
				t.Fatal(err)
			}
			hash := regexp.MustCompile(`[0-9a-f]{64}  -`)
			v, err = p.b.call(130*time.Second, "waitFor", p.params(map[string]any{
				"fn":  `(re) => { const m = ` + linesJS + `.join("\n").match(new RegExp(re)); return m && m[0]; }`,
				"arg": hash.String(), "timeoutMs": 120000}))
			if err != nil {
				t.Fatalf("waiting for the remote's sha256: %v\nscreen:\n%s", err, p.screenDump())
			}
			var got string
			json.Unmarshal(v, &got)
			if got[:64] != want.Sha256 {
				t.Errorf("remote got sha256 %s, want %s (the pasted %d bytes, intact and in order)", got[:64], want.Sha256, want.Bytes)
			}
			var sizes []int
			p.eval(`() => window.__sentInput.map((s) => new TextEncoder().encode(s).length)`, nil, &sizes)
			total, largest := 0, 0
			for _, n := range sizes {
				total += n
				largest = max(largest, n)
			}
			if total != want.Bytes || largest > 64<<10 {
				t.Errorf("got %d bytes in %d messages of at most %d bytes, want %d bytes in messages of at most 65536", total, len(sizes), largest, want.Bytes)
			}
			t.Logf("%d bytes in %d messages", total, len(sizes))
			p.waitPrompt()
			checkEcho(t, p)
		})
	}
}
