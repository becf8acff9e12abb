package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alfresco-ssh/alfresco-ssh/internal/sshdtest"
)

// The file panel (static/files.js) in headless Chromium, against the real
// binary and sshd's sftp subsystem.

// transferTimeout bounds a 200 MB transfer through the page.
const transferTimeout = 3 * time.Minute

// pattern is the content the page makes for a synthetic drop (dropJS):
// a 1 MiB block of a 32-bit LCG's high bytes, repeated, cut at size.
func pattern(size int64, seed uint32) io.Reader {
	block := make([]byte, 1<<20)
	x := seed
	for i := range block {
		x = x*1103515245 + 12345
		block[i] = byte(x >> 24)
	}
	readers := make([]io.Reader, 0, size>>20+1)
	for left := size; left > 0; left -= int64(len(block)) {
		readers = append(readers, io.LimitReader(bytes.NewReader(block), left))
	}
	return io.MultiReader(readers...)
}

// dropJS drops files made of pattern on the terminal, as a user dragging
// them from the desktop.
const dropJS = `(files) => {
	const dt = new DataTransfer();
	for (const f of files) {
		const block = new Uint8Array(1 << 20);
		let x = f.seed;
		for (let i = 0; i < block.length; i++) {
			x = (Math.imul(x, 1103515245) + 12345) >>> 0;
			block[i] = x >>> 24;
		}
		const parts = [];
		for (let left = f.size; left > 0; left -= block.length) {
			parts.push(left >= block.length ? block : block.subarray(0, left));
		}
		dt.items.add(new File(parts, f.name));
	}
	const target = document.querySelector(".xterm");
	for (const type of ["dragenter", "dragover", "drop"]) {
		target.dispatchEvent(new DragEvent(type, {bubbles: true, cancelable: true, dataTransfer: dt}));
	}
}`

// writePattern writes size bytes of pattern(size, seed) to path, removed
// when the test ends.
func writePattern(t *testing.T, path string, size int64, seed uint32) {
	t.Helper()
	f, err := os.Create(path)
	if err == nil {
		_, err = io.Copy(f, pattern(size, seed))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(path) })
}

func sha256Of(t *testing.T, r io.Reader) string {
	t.Helper()
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func fileSHA256(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return sha256Of(t, f)
}

// waitLong is waitFor with a longer deadline, for large transfers.
func (p *page) waitLong(what, fn string, arg any, timeout time.Duration) json.RawMessage {
	p.t.Helper()
	v, err := p.b.call(timeout+10*time.Second, "waitFor",
		p.params(map[string]any{"fn": fn, "arg": arg, "timeoutMs": timeout.Milliseconds()}))
	if err != nil {
		p.t.Fatalf("waiting for %s: %v", what, err)
	}
	return v
}

// transferJS is the state of the newest transfer of a file, and its text.
const transferJS = `(name) => {
	const row = [...document.querySelectorAll(".files-transfer")].find((r) => r.dataset.name === name);
	return row ? row.dataset.state + ": " + row.querySelector(".files-transfer-text").textContent : "";
}`

// waitTransfer waits until the newest transfer of name has finished, and
// fails the test unless it is done.
func (p *page) waitTransfer(name string, timeout time.Duration) {
	p.t.Helper()
	var state string
	json.Unmarshal(p.waitLong("the transfer of "+name+" to finish",
		`(name) => { const s = (`+transferJS+`)(name); return /^(done|failed|cancelled)/.test(s) && s; }`,
		name, timeout), &state)
	if !strings.HasPrefix(state, "done") {
		p.t.Fatalf("transfer of %s: got %q, want done", name, state)
	}
}

// openPanel opens the file panel with its shortcut and waits for a listing
// of dir ("" waits for any).
func (p *page) openPanel(dir string) {
	p.t.Helper()
	p.press("Control+Shift+F")
	p.waitFor("the file panel", `() => { const p = document.querySelector(".files-panel"); return p && !p.hidden; }`, nil)
	if dir != "" {
		p.showDir(dir)
	}
}

// showDir shows dir in the panel and waits for its listing.
func (p *page) showDir(dir string) {
	p.t.Helper()
	p.eval(`(dir) => window.alfresco.files.show(dir)`, dir, nil)
	p.waitFor("the listing of "+dir, `(dir) => document.querySelector(".files-path").title === dir &&
		!document.querySelector(".files-panel").hasAttribute("aria-busy")`, dir)
}

// entriesJS lists the panel's entries as "name type size".
const entriesJS = `() => [...document.querySelectorAll(".files-entry")].map((e) =>
	e.dataset.name + " " + e.dataset.type + " " + e.querySelector(".files-size").textContent)`

func TestBrowserFiles(t *testing.T) {
	getBrowser(t)
	sshd := sshdtest.Start(t)
	g := startGateway(t)
	dir := sshd.UserDir(t)
	const chosenSize = 200 << 20
	chosen := filepath.Join(processDir(t), "chosen 200MB.bin")
	writePattern(t, chosen, chosenSize, 7)
	chosenSHA := fileSHA256(t, chosen)
	tab := newPage(t, pageOptions{Width: 1200, Height: 700})
	openTerminal(t, tab, g.url+"/?connection="+g.createCredentials(t, login(sshd)))
	// in is the tab for a subtest, failing that subtest.
	in := func(t *testing.T) *page {
		q := *tab
		q.t = t
		return &q
	}

	t.Run("listing and navigation", func(t *testing.T) {
		p := in(t)
		for name, content := range map[string]string{"notes.txt": "hello", "b.bin": strings.Repeat("x", 3000)} {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
			t.Fatal(err)
		}
		// The page shows dates in the browser's time zone, the machine's.
		mtime := time.Date(2024, 5, 6, 7, 8, 9, 0, time.Local)
		if err := os.Chtimes(filepath.Join(dir, "notes.txt"), mtime, mtime); err != nil {
			t.Fatal(err)
		}
		p.openPanel("")
		p.waitFor("the home directory listed", `(name) => document.querySelector(".files-entry[data-name='`+filepath.Base(dir)+`']")`, nil)
		p.click(".files-entry[data-name='" + filepath.Base(dir) + "']")
		p.waitFor("the test directory listed", `(dir) => document.querySelector(".files-path").title === dir`, dir)
		var entries []string
		p.eval(entriesJS, nil, &entries)
		if want := []string{".. dir ", "sub dir ", "b.bin file 2.9 KiB", "notes.txt file 5 B"}; strings.Join(entries, "|") != strings.Join(want, "|") {
			t.Errorf("entries: got %q, want %q", entries, want)
		}
		var date string
		p.eval(`() => document.querySelector(".files-entry[data-name='notes.txt'] .files-date").textContent`, nil, &date)
		if want := mtime.Format("2006-01-02 15:04"); date != want {
			t.Errorf("date of notes.txt: got %q, want %q", date, want)
		}
		p.click(".files-entry[data-name='sub']")
		p.waitFor("the subdirectory listed", `(dir) => document.querySelector(".files-path").title === dir`, dir+"/sub")
		p.click(".files-entry[data-name='..']")
		p.waitFor("back in the test directory", `(dir) => document.querySelector(".files-path").title === dir`, dir)
	})

	t.Run("errors in the panel", func(t *testing.T) {
		p := in(t)
		locked := filepath.Join(dir, "locked")
		if err := os.Mkdir(locked, 0o700); err != nil { // root's
			t.Fatal(err)
		}
		for path, want := range map[string]string{
			locked:             "Permission denied: " + locked,
			dir + "/missing":   "No such file or directory: " + dir + "/missing",
			dir + "/notes.txt": "Not a directory: " + dir + "/notes.txt",
		} {
			p.eval(`(dir) => window.alfresco.files.show(dir)`, path, nil)
			p.waitFor("the error "+want, `(want) => { const e = document.querySelector(".files-error"); return !e.hidden && e.textContent === want; }`, want)
		}
		p.showDir(dir)
		p.waitFor("the error to clear", `() => document.querySelector(".files-error").hidden`, nil)
	})

	t.Run("upload with the file chooser", func(t *testing.T) {
		p := in(t)
		p.showDir(dir)
		if _, err := p.b.call(time.Minute, "setInputFiles", p.params(map[string]any{"selector": ".files-picker", "files": []string{chosen}})); err != nil {
			t.Fatal(err)
		}
		p.waitTransfer("chosen 200MB.bin", transferTimeout)
		if got, want := fileSHA256(t, filepath.Join(dir, "chosen 200MB.bin")), chosenSHA; got != want {
			t.Errorf("uploaded file: got sha256 %s, want %s", got, want)
		}
		p.waitFor("the upload in the listing", `() => document.querySelector(".files-entry[data-name='chosen 200MB.bin']")`, nil)
	})

	t.Run("upload by dropping files", func(t *testing.T) {
		p := in(t)
		p.eval(`() => window.alfresco.files.toggle(false)`, nil, nil)
		files := []struct {
			Name string `json:"name"`
			Size int64  `json:"size"`
			Seed uint32 `json:"seed"`
		}{{"dropped 200MB.bin", 200 << 20, 1}, {"naïve 'quoted' € & co.txt", 1000, 2}}
		p.eval(dropJS, files, nil)
		p.waitFor("the panel to open on the drop", `() => !document.querySelector(".files-panel").hidden`, nil)
		for _, f := range files {
			p.waitTransfer(f.Name, transferTimeout)
			if got, want := fileSHA256(t, filepath.Join(dir, f.Name)), sha256Of(t, pattern(f.Size, f.Seed)); got != want {
				t.Errorf("dropped %s: got sha256 %s, want %s", f.Name, got, want)
			}
		}
	})

	t.Run("download", func(t *testing.T) {
		p := in(t)
		// Chromium saves a double quote as "_" whatever the server says;
		// the exact Content-Disposition is the files package's test.
		name := "naïve 'quoted' € & co.txt"
		p.showDir(dir)
		saved := filepath.Join(processDir(t), "download-"+randomTag())
		v, err := p.b.call(transferTimeout, "download", p.params(map[string]any{
			"selector": ".files-entry[data-name=" + strconv.Quote(name) + "]", "path": saved,
		}))
		if err != nil {
			t.Fatal(err)
		}
		defer os.Remove(saved)
		var d struct{ SuggestedFilename string }
		json.Unmarshal(v, &d)
		if d.SuggestedFilename != name {
			t.Errorf("download name: got %q, want %q", d.SuggestedFilename, name)
		}
		if got, want := fileSHA256(t, saved), sha256Of(t, pattern(1000, 2)); got != want {
			t.Errorf("downloaded file: got sha256 %s, want %s", got, want)
		}
		p.waitTransfer(name, waitTimeout)
	})

	t.Run("cancel", func(t *testing.T) {
		p := in(t)
		// Upload the chosen file again and cancel it midway: the file
		// stored before stays as it was, and no partial file is left.
		p.showDir(dir)
		if _, err := p.b.call(time.Minute, "setInputFiles", p.params(map[string]any{"selector": ".files-picker", "files": []string{chosen}})); err != nil {
			t.Fatal(err)
		}
		p.waitFor("the upload to start", `() => { const s = (`+transferJS+`)("chosen 200MB.bin"); return s.startsWith("running") && / of /.test(s); }`, nil)
		p.click(".files-transfer[data-name='chosen 200MB.bin'] .files-cancel")
		p.waitFor("the upload to be cancelled", `() => (`+transferJS+`)("chosen 200MB.bin").startsWith("cancelled")`, nil)
		deadline := time.Now().Add(waitTimeout) // the gateway removes the partial file once it sees the request end
		for {
			left, _ := filepath.Glob(filepath.Join(dir, ".upload-*"))
			if len(left) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the cancelled upload left %v", left)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if got, want := fileSHA256(t, filepath.Join(dir, "chosen 200MB.bin")), chosenSHA; got != want {
			t.Errorf("file after a cancelled upload over it: got sha256 %s, want the earlier %s", got, want)
		}
		p.eval(`() => window.alfresco.files.toggle(false)`, nil, nil) // the keyboard back to the terminal
		checkEcho(t, p)                                               // which still works
	})

	t.Run("session end", func(t *testing.T) {
		p := in(t)
		p.eval(`() => window.alfresco.files.toggle(false)`, nil, nil)
		p.click(".xterm")
		p.run("exit")
		p.waitFor("the page to end the session", `() => window.alfresco.state === "ended"`, nil)
		p.openPanel("")
		p.waitFor("the panel to say the session ended", `() => {
			const e = document.querySelector(".files-error");
			return !e.hidden && e.textContent.includes("session has ended");
		}`, nil)
	})
}

// TestBrowserFilesFramed: the panel inside a cross-origin <iframe> lists,
// downloads, and refuses a file over --files-max-upload before sending it.
func TestBrowserFilesFramed(t *testing.T) {
	getBrowser(t)
	sshd := sshdtest.Start(t)
	g := startGateway(t, "--files-max-upload", "1000")
	dir := sshd.UserDir(t)
	if err := os.WriteFile(filepath.Join(dir, "framed.txt"), []byte("from the frame"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := newPage(t, pageOptions{})
	p.navigate(startEmbedder(t).url(g.url + "/?connection=" + g.createCredentials(t, login(sshd))))
	f := p.inFrame(g.url)
	f.waitFor("the framed session to be ready", `() => window.alfresco && window.alfresco.state === "ready"`, nil)
	f.click(".files-toggle")
	f.showDir(dir)
	saved := filepath.Join(processDir(t), "framed-"+randomTag())
	v, err := f.b.call(time.Minute, "download", f.params(map[string]any{"selector": ".files-entry[data-name='framed.txt']", "path": saved}))
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(saved)
	var d struct{ SuggestedFilename string }
	json.Unmarshal(v, &d)
	if got, _ := os.ReadFile(saved); string(got) != "from the frame" || d.SuggestedFilename != "framed.txt" {
		t.Errorf("framed download: got %q named %q, want %q named framed.txt", got, d.SuggestedFilename, "from the frame")
	}

	f.eval(dropJS, []map[string]any{{"name": "too big.bin", "size": 2000, "seed": 6}}, nil)
	f.waitFor("the refusal", `() => (`+transferJS+`)("too big.bin") === "failed: Larger than the gateway allows (1000 B)"`, nil)
	if _, err := os.Stat(filepath.Join(dir, "too big.bin")); err == nil {
		t.Error("a file over --files-max-upload was stored")
	}
}

// TestBrowserFilesOff: --files=false leaves no token, no endpoints and no
// panel.
func TestBrowserFilesOff(t *testing.T) {
	getBrowser(t)
	sshd := sshdtest.Start(t)
	g := startGateway(t, "--files=false")
	p := newPage(t, pageOptions{})
	openTerminal(t, p, g.url+"/?connection="+g.createCredentials(t, login(sshd)))
	var present bool
	p.eval(`() => !!document.querySelector(".files-toggle, .files-panel") || !!window.alfresco.files`, nil, &present)
	if present {
		t.Error("the page shows a file panel with --files=false")
	}
	res, err := httpClient.Get(g.url + "/files/list")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound {
		t.Errorf("GET /files/list with --files=false: got %d, want 404", res.StatusCode)
	}
	checkEcho(t, p)
}

// TestBrowserFilesScreenshot takes the README's picture of the panel:
//
//	FILES_SCREENSHOT=$PWD/docs/files-panel.png go test -run TestBrowserFilesScreenshot ./e2e/
func TestBrowserFilesScreenshot(t *testing.T) {
	shot := os.Getenv("FILES_SCREENSHOT")
	if shot == "" {
		t.Skip("FILES_SCREENSHOT is not set")
	}
	getBrowser(t)
	sshd := sshdtest.Start(t)
	g := startGateway(t)
	dir := filepath.Join(filepath.Dir(sshd.UserDir(t)), "lab-3")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sshd.Chown(t, dir)
	for name, size := range map[string]int{"report.pdf": 482133, "measurements.csv": 90412, "analysis.py": 3180, "README.md": 1204, "results": -1, "data": -1} {
		p := filepath.Join(dir, name)
		var err error
		if size < 0 {
			err = os.Mkdir(p, 0o755)
		} else {
			err = os.WriteFile(p, make([]byte, size), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
		sshd.Chown(t, p)
	}
	p := newPage(t, pageOptions{Width: 1400, Height: 560})
	openTerminal(t, p, g.url+"/?connection="+g.createCredentials(t, login(sshd)))
	p.openPanel(dir)
	p.click(".xterm")
	p.run("cd ~/lab-3 && ls -l")
	p.waitPrompt()
	local := filepath.Join(processDir(t), "screenshot")
	if err := os.MkdirAll(local, 0o755); err != nil {
		t.Fatal(err)
	}
	writePattern(t, filepath.Join(local, "dataset.tar.gz"), 300<<20, 4)
	writePattern(t, filepath.Join(local, "notes.txt"), 2000, 5)
	if _, err := p.b.call(time.Minute, "setInputFiles", p.params(map[string]any{"selector": ".files-picker",
		"files": []string{filepath.Join(local, "notes.txt"), filepath.Join(local, "dataset.tar.gz")}})); err != nil {
		t.Fatal(err)
	}
	p.waitTransfer("notes.txt", waitTimeout)
	p.waitFor("the upload a third done", `() => { const b = document.querySelector(".files-transfer[data-name='dataset.tar.gz'] progress"); return b && b.value > 0.3; }`, nil)
	if _, err := p.b.call(30*time.Second, "screenshot", map[string]any{"page": p.id, "path": shot}); err != nil {
		t.Fatal(err)
	}
	p.waitTransfer("dataset.tar.gz", transferTimeout)
}
