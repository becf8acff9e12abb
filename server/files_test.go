package server

import (
	"context"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"os/user"
	"strings"
	"testing"
	"time"

	"github.com/alfresco-ssh/alfresco-ssh/files"
	"github.com/alfresco-ssh/alfresco-ssh/internal/sshdtest"
)

// rawTerminal is a terminal driven by a bare Engine.IO websocket client,
// which can hold the session open while the test makes HTTP requests.
type rawTerminal struct {
	c     engineClient
	ready map[string]any // the connection-ready payload
}

// openRawTerminal creates credentials for sshd, starts a session and waits
// for connection-ready and the shell's prompt.
func openRawTerminal(t *testing.T, g *gateway, sshd *sshdtest.Server) *rawTerminal {
	t.Helper()
	id := g.create(t, passwordLogin(sshd))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	c, err := dialWS(ctx, g.url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.close)
	r := &rawTerminal{c: c}
	if err := c.send("40/ssh,"); err != nil {
		t.Fatal(err)
	}
	prompted := false
	r.until(t, func(p string) bool {
		// The prompt too: the shell is quiet from then on.
		prompted = prompted || strings.HasPrefix(p, `42/ssh,["ssh-output"`) && strings.Contains(p, "alfresco-test$ ")
		if strings.HasPrefix(p, "40/ssh,{") {
			if err := c.send(`42/ssh,["start-session",{"credentials_uuid":"` + id + `"}]`); err != nil {
				t.Fatal(err)
			}
		}
		var ev []json.RawMessage
		if rest, ok := strings.CutPrefix(p, "42/ssh,"); ok && json.Unmarshal([]byte(rest), &ev) == nil &&
			len(ev) == 2 && string(ev[0]) == `"connection-ready"` {
			if err := json.Unmarshal(ev[1], &r.ready); err != nil {
				t.Fatalf("connection-ready payload %s: %v", ev[1], err)
			}
		}
		return r.ready != nil && prompted
	})
	return r
}

// until reads packets, answering pings, until done returns true.
func (r *rawTerminal) until(t *testing.T, done func(packet string) bool) {
	t.Helper()
	for {
		packets, err := r.c.recv()
		if err != nil {
			t.Fatalf("terminal: %v", err)
		}
		for _, p := range packets {
			if p == "2" {
				r.c.send("3") //nolint:errcheck // a failure shows at the next recv
				continue
			}
			if done(p) {
				return
			}
		}
	}
}

// exit ends the shell and waits for the server's DISCONNECT.
func (r *rawTerminal) exit(t *testing.T) {
	t.Helper()
	if err := r.c.send(`42/ssh,["ssh-input",{"input":"exit\n"}]`); err != nil {
		t.Fatal(err)
	}
	r.until(t, func(p string) bool { return p == "41/ssh," || p == "41/ssh" })
}

func (r *rawTerminal) token(t *testing.T) string {
	t.Helper()
	token, ok := r.ready["files_token"].(string)
	if !ok || len(token) < 32 {
		t.Fatalf("connection-ready %v: want a files_token", r.ready)
	}
	return token
}

// filesRequest sends a request to the gateway's /files/ endpoint with the
// token (none when empty) and headers, and returns the status and body.
func filesRequest(t *testing.T, g *gateway, method, endpoint, token string, body io.Reader, header http.Header) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, g.url+"/files/"+endpoint, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header, string(b)
}

// uploadFile uploads one file, name holding content, into the remote
// dir through the gateway's /files/upload with the token, and returns the
// status and body.
func uploadFile(t *testing.T, g *gateway, token, dir, name, content string) (int, string) {
	t.Helper()
	var b strings.Builder
	mw := multipart.NewWriter(&b)
	part, _ := mw.CreateFormFile("file", name)
	io.WriteString(part, content)
	mw.Close()
	status, _, body := filesRequest(t, g, "POST", "upload?path="+dir, token, strings.NewReader(b.String()),
		http.Header{"Content-Type": {mw.FormDataContentType()}})
	return status, body
}

func TestFiles(t *testing.T) {
	sshd := sshdtest.Start(t)
	u, err := user.Lookup(sshd.User)
	if err != nil {
		t.Fatal(err)
	}
	audited := make(chan files.Transfer, 10)
	g := startGateway(t, Config{Files: true, AllowedOrigins: []string{"https://lab.example.com"},
		FilesAudit: func(tr files.Transfer) { audited <- tr }})
	one, two := openRawTerminal(t, g, sshd), openRawTerminal(t, g, sshd)
	token1, token2 := one.token(t), two.token(t)
	if token1 == token2 {
		t.Fatal("two terminals got the same files token")
	}
	// id is the terminal of a token.
	id := func(token string) string {
		term, ok := g.srv.Terminals().FilesTerminal(token)
		if !ok {
			t.Fatalf("no terminal has the files token of connection-ready")
		}
		return term.ID()
	}
	id1, id2 := id(token1), id(token2)

	t.Run("list", func(t *testing.T) {
		status, _, body := filesRequest(t, g, "GET", "list", token1, nil, nil)
		if status != http.StatusOK || !strings.Contains(body, `"path":"`+u.HomeDir+`"`) {
			t.Errorf("list: got %d %s, want 200 listing %s", status, body, u.HomeDir)
		}
	})
	t.Run("upload and download", func(t *testing.T) {
		dir := sshd.UserDir(t)
		status, body := uploadFile(t, g, token1, dir, "files-test.txt", "through the gateway")
		if status != http.StatusOK {
			t.Fatalf("upload: got %d %s, want 200", status, body)
		}
		status, h, body := filesRequest(t, g, "GET", "download?path="+dir+"/files-test.txt", token2, nil, nil)
		if status != http.StatusOK || body != "through the gateway" || !strings.HasPrefix(h.Get("Content-Disposition"), "attachment;") {
			t.Errorf("download: got %d %q (%v), want 200 with the upload as an attachment", status, body, h)
		}
		// Each transfer is audited once it has ended, as its terminal's.
		for _, want := range []files.Transfer{
			{Session: id1, Direction: "upload", Path: dir + "/files-test.txt", Bytes: 19, Result: "ok"},
			{Session: id2, Direction: "download", Path: dir + "/files-test.txt", Bytes: 19, Result: "ok"},
		} {
			select {
			case got := <-audited:
				if got.Started.IsZero() || got.Duration <= 0 {
					t.Errorf("audited %+v: want its start and duration", got)
				}
				got.Started, got.Duration = time.Time{}, 0
				if got != want {
					t.Errorf("audited %+v, want %+v", got, want)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("no audit of %+v", want)
			}
		}
	})
	t.Run("a token is its terminal's", func(t *testing.T) {
		// The shells are quiet by now: only the transfers are activity.
		for _, tt := range []struct{ token, used, idle string }{{token1, id1, id2}, {token2, id2, id1}} {
			before := make(map[string]time.Time)
			for _, info := range g.srv.Terminals().List() {
				before[info.ID] = info.Active
			}
			time.Sleep(2 * time.Millisecond) // a later clock reading
			filesRequest(t, g, "GET", "download?path="+u.HomeDir+"/.bashrc", tt.token, nil, nil)
			select {
			case <-audited: // the download has ended
			case <-time.After(10 * time.Second):
				t.Fatal("the download was not audited")
			}
			for _, info := range g.srv.Terminals().List() {
				if moved := info.Active.After(before[info.ID]); moved != (info.ID == tt.used) {
					t.Errorf("download with the token of %s: terminal %s active %v -> %v, want only %s active",
						tt.used, info.ID, before[info.ID], info.Active, tt.used)
				}
			}
		}
	})
	t.Run("origins", func(t *testing.T) {
		for _, tt := range []struct {
			origin string
			status int
		}{
			{g.url, http.StatusOK},
			{"https://lab.example.com", http.StatusOK},
			{"https://evil.example.com", http.StatusForbidden},
			{"null", http.StatusForbidden},
		} {
			status, h, body := filesRequest(t, g, "GET", "list", token1, nil, http.Header{"Origin": {tt.origin}})
			if status != tt.status {
				t.Errorf("origin %s: got %d %s, want %d", tt.origin, status, body, tt.status)
			}
			if tt.origin == "https://lab.example.com" && h.Get("Access-Control-Allow-Origin") != tt.origin {
				t.Errorf("origin %s: got Access-Control-Allow-Origin %q, want it", tt.origin, h.Get("Access-Control-Allow-Origin"))
			}
		}
		status, h, _ := filesRequest(t, g, "OPTIONS", "upload", "", nil, http.Header{
			"Origin": {"https://lab.example.com"}, "Access-Control-Request-Method": {"POST"},
			"Access-Control-Request-Headers": {"authorization"},
		})
		if status != http.StatusNoContent || !strings.Contains(h.Get("Access-Control-Allow-Headers"), "Authorization") {
			t.Errorf("preflight: got %d %v, want 204 allowing Authorization", status, h)
		}
		if status, _, _ := filesRequest(t, g, "OPTIONS", "upload", "", nil, http.Header{"Origin": {"https://evil.example.com"}}); status != http.StatusForbidden {
			t.Errorf("preflight from a foreign origin: got %d, want 403", status)
		}
	})
	t.Run("tokens", func(t *testing.T) {
		for _, token := range []string{"", "forged", strings.Repeat("x", len(token1))} {
			if status, _, body := filesRequest(t, g, "GET", "list", token, nil, nil); status != http.StatusUnauthorized {
				t.Errorf("token %q: got %d %s, want 401", token, status, body)
			}
		}
		one.exit(t)
		if status, _, body := filesRequest(t, g, "GET", "list", token1, nil, nil); status != http.StatusUnauthorized {
			t.Errorf("token of an ended terminal: got %d %s, want 401", status, body)
		}
		if status, _, body := filesRequest(t, g, "GET", "list", token2, nil, nil); status != http.StatusOK {
			t.Errorf("token of a live terminal: got %d %s, want 200", status, body)
		}
	})
	if strings.Contains(g.logs.String(), token2) {
		t.Errorf("the gateway log holds a files token")
	}
}

func TestFilesOff(t *testing.T) {
	sshd := sshdtest.Start(t)
	g := startGateway(t, Config{})
	term := openRawTerminal(t, g, sshd)
	if _, ok := term.ready["files_token"]; ok || term.ready["ready"] != true {
		t.Errorf("connection-ready: got %v, want {ready: true} alone", term.ready)
	}
	for _, r := range []struct{ method, endpoint string }{
		{"GET", "list"}, {"GET", "download"}, {"HEAD", "download"}, {"POST", "upload"}, {"OPTIONS", "upload"},
	} {
		if status, _, body := filesRequest(t, g, r.method, r.endpoint, "", nil, http.Header{"Origin": {g.url}}); status != http.StatusNotFound {
			t.Errorf("%s /files/%s: got %d %s, want 404", r.method, r.endpoint, status, body)
		}
	}
	term.exit(t)
}

// TestFilesBasePath: the /files/ routes move under --base-path.
func TestFilesBasePath(t *testing.T) {
	s := newTestServer(t, Config{Files: true, BasePath: "/lab/terminal"})
	for path, status := range map[string]int{"/lab/terminal/files/list": 401, "/files/list": 404} {
		if res, _, body := do(t, s, getReq(path)); res.StatusCode != status {
			t.Errorf("GET %s: got %d %q, want %d", path, res.StatusCode, body, status)
		}
	}
}

// TestFilesIdle: an upload counts as activity for the idle timeout, and
// the timer runs on once it is over.
func TestFilesIdle(t *testing.T) {
	sshd := sshdtest.Start(t)
	const idle = time.Second
	g := startGateway(t, Config{Files: true, IdleTimeout: idle})
	term := openRawTerminal(t, g, sshd)
	// An upload that lasts three idle timeouts, its body trickling in.
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		part, err := mw.CreateFormFile("file", "slow.txt")
		for end := time.Now().Add(3 * idle); err == nil && time.Now().Before(end); time.Sleep(idle / 10) {
			_, err = io.WriteString(part, "a line every tenth of the idle timeout\n")
		}
		if err == nil {
			err = mw.Close()
		}
		pw.CloseWithError(err)
	}()
	status, _, body := filesRequest(t, g, "POST", "upload?path="+sshd.UserDir(t), term.token(t), pr,
		http.Header{"Content-Type": {mw.FormDataContentType()}})
	if status != http.StatusOK {
		t.Fatalf("upload over three idle timeouts: got %d %s, want 200 (the terminal kept alive)", status, body)
	}
	// The idle terminal ends: the server's DISCONNECT, within the
	// connection's deadline.
	term.until(t, func(p string) bool { return p == "41/ssh," || p == "41/ssh" })
}
