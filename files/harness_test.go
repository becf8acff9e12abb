package files_test

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/alfresco-ssh/alfresco-ssh/files"
	"github.com/alfresco-ssh/alfresco-ssh/internal/sshdtest"
	"github.com/alfresco-ssh/alfresco-ssh/internal/syncbuf"
	"github.com/alfresco-ssh/alfresco-ssh/sshbridge"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(suite{m})
}

// suite runs the tests, then stops the sshd they shared before goleak
// looks; a session still alive then fails the run.
type suite struct{ m *testing.M }

func (s suite) Run() int {
	code := s.m.Run()
	if shared.sshd != nil {
		if err := shared.sshd.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "files:", err)
			code = 1
		}
	}
	return code
}

// shared is the sshd of every test of the package, started by the first
// that needs one: starting one takes seconds (its host keys).
var shared struct {
	once sync.Once
	sshd *sshdtest.Server
	err  error
}

// startSSHD returns the shared sshd, skipping the test (failing it in CI)
// when sshd cannot run here.
func startSSHD(t *testing.T) *sshdtest.Server {
	t.Helper()
	if testing.Short() {
		t.Skip("starts sshd")
	}
	shared.once.Do(func() { shared.sshd, shared.err = sshdtest.Launch() })
	if errors.Is(shared.err, sshdtest.ErrUnavailable) {
		skipOrFatal(t, shared.err.Error())
	}
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.sshd
}

// waitTimeout bounds every wait in these tests; passing tests never reach it.
const waitTimeout = 20 * time.Second

// terminal is the in-test Session: a real shell session on sshd, as the
// terminal package's sessions will be.
type terminal struct {
	*sshbridge.Session
	id      string
	touches atomic.Int64
}

func (s *terminal) Touch()     { s.touches.Add(1) }
func (s *terminal) ID() string { return s.id }

// gateway is a files Handler over a real sshd, served by httptest.
type gateway struct {
	sshd  *sshdtest.Server
	uid   int
	gid   int
	home  string // the test user's home
	dir   string // a fresh directory in home, owned by the test user
	url   string
	toks  *files.Tokens
	logs  *syncbuf.Buffer
	mu    sync.Mutex
	audit []files.Transfer

	audited chan files.Transfer // each audited transfer, while there is room
}

// newGateway starts sshd and a files Handler with cfg (its Sessions,
// Logger and Audit are the gateway's).
func newGateway(t *testing.T, cfg files.Config) *gateway {
	t.Helper()
	g := &gateway{sshd: startSSHD(t), toks: &files.Tokens{}, logs: &syncbuf.Buffer{}, audited: make(chan files.Transfer, 100)}
	u, err := user.Lookup(g.sshd.User)
	if err != nil {
		t.Fatal(err)
	}
	g.home = u.HomeDir
	g.uid, _ = strconv.Atoi(u.Uid)
	g.gid, _ = strconv.Atoi(u.Gid)
	g.dir = g.sshd.UserDir(t)

	cfg.Sessions = g.toks
	cfg.Logger = slog.New(slog.NewTextHandler(g.logs, nil))
	cfg.Audit = func(tr files.Transfer) {
		g.mu.Lock()
		defer g.mu.Unlock()
		g.audit = append(g.audit, tr)
		select {
		case g.audited <- tr:
		default:
		}
	}
	h := files.New(cfg)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /files/list", h.List)
	mux.HandleFunc("GET /files/download", h.Download)
	mux.HandleFunc("POST /files/upload", h.Upload)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	g.url = srv.URL
	return g
}

// terminal opens a shell session on sshd and issues its token. The session
// ends (and the token is revoked) at cleanup, or when end is called.
func (g *gateway) terminal(t *testing.T, id string) (term *terminal, token string, end func()) {
	t.Helper()
	sess, err := sshbridge.Dial(t.Context(), sshbridge.Config{Timeout: waitTimeout}, sshbridge.Target{
		Host: g.sshd.Host, Port: g.sshd.Port, User: g.sshd.User, Password: g.sshd.Password,
	}, sshbridge.DefaultWindowSize)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	term = &terminal{Session: sess, id: id}
	token, revoke := g.toks.Issue(term)
	end = func() {
		revoke()
		sess.Close()
	}
	t.Cleanup(end)
	return term, token, end
}

// writeFile writes a file owned by the test user into g.dir.
func (g *gateway) writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(g.dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	g.sshd.Chown(t, p)
	return p
}

// writeContent writes size bytes of newContent(size, seed) into g.dir.
func (g *gateway) writeContent(t *testing.T, name string, size int64, seed byte) string {
	t.Helper()
	p := filepath.Join(g.dir, name)
	f, err := os.Create(p)
	if err == nil {
		_, err = io.Copy(f, newContent(size, seed))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	g.sshd.Chown(t, p)
	return p
}

// mkdir makes a directory owned by the test user into g.dir.
func (g *gateway) mkdir(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join(g.dir, name)
	if err := os.Mkdir(p, 0o755); err != nil {
		t.Fatal(err)
	}
	g.sshd.Chown(t, p)
	return p
}

// nextAudit waits for the next audited transfer.
func (g *gateway) nextAudit(t *testing.T) files.Transfer {
	t.Helper()
	select {
	case tr := <-g.audited:
		return tr
	case <-time.After(waitTimeout):
		t.Fatal("no transfer was audited")
		return files.Transfer{}
	}
}

// transfers returns the audited transfers so far.
func (g *gateway) transfers() []files.Transfer {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]files.Transfer(nil), g.audit...)
}

// request sends a request to endpoint ("list", "download", "upload") with
// path as the path parameter (none when empty).
func (g *gateway) request(t *testing.T, method, endpoint, token, path string, body io.Reader, header http.Header) *http.Response {
	t.Helper()
	u := g.url + "/files/" + endpoint
	if path != "" {
		u += "?path=" + url.QueryEscape(path)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// apiError is the JSON body of an error.
type apiError struct {
	Success bool   `json:"success"`
	Error   string `json:"error"`
}

// decode reads a JSON body, checking the status first.
func decode[T any](t *testing.T, resp *http.Response, status int) T {
	t.Helper()
	var v T
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	if resp.StatusCode != status {
		t.Fatalf("status: got %d (%s), want %d", resp.StatusCode, body, status)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type: got %q, want application/json (body %s)", ct, body)
	}
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	return v
}

// checkError checks an error answer: status, JSON, and a message that
// contains want.
func checkError(t *testing.T, resp *http.Response, status int, want string) {
	t.Helper()
	e := decode[apiError](t, resp, status)
	if e.Success || !strings.Contains(e.Error, want) {
		t.Errorf("error body: got %+v, want success false and an error containing %q", e, want)
	}
}

// content is n bytes of test data, streamed: 4 KiB chunks of random bytes,
// each starting with its index and the seed, so that a misplaced or
// repeated chunk changes the digest. Cheap to make, even under -race.
type content struct {
	seed  byte
	off   int64
	left  int64
	chunk [4096]byte
}

// contentBlock is the random data of every chunk.
var contentBlock = func() []byte {
	b := make([]byte, 4096)
	rand.NewChaCha8([32]byte{42}).Read(b)
	return b
}()

func newContent(n int64, seed byte) *content {
	return &content{seed: seed, left: n}
}

func (c *content) Read(p []byte) (int, error) {
	if c.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n := 0
	for n < len(p) {
		i, at := c.off/4096, c.off%4096
		copy(c.chunk[:], contentBlock)
		binary.BigEndian.PutUint64(c.chunk[:], uint64(i))
		c.chunk[8] = c.seed
		m := copy(p[n:], c.chunk[at:])
		n += m
		c.off += int64(m)
	}
	c.left -= int64(n)
	return n, nil
}

// digest returns the hex SHA-256 of r.
func digest(t *testing.T, r io.Reader) string {
	t.Helper()
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		t.Fatalf("hash: %v", err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// fileDigest returns the hex SHA-256 of the local file p.
func fileDigest(t *testing.T, p string) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return digest(t, f)
}

// run runs a command and returns its combined output.
func run(name string, args ...string) ([]byte, error) {
	return exec.Command(name, args...).CombinedOutput()
}

// skipOrFatal skips the test, or fails it when CI is "true", as sshdtest
// does: nothing is silently skipped in CI.
func skipOrFatal(t *testing.T, reason string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s (CI=true: not skipping)", reason)
	}
	t.Skip(reason)
}
