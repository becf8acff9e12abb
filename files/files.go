// Package files serves file transfers of live terminals: listing remote
// directories, downloading and uploading files over SFTP on the terminal's
// own SSH connection, so that files travel over the login the terminal
// already made and the browser never holds a credential.
//
// A terminal gets a files token when it starts (terminal.Manager); a
// request carries it as "Authorization: Bearer <token>", and the token
// works exactly as long as its terminal lives. The Handler's three methods
// are plain net/http handlers that the web server mounts at
// /files/list, /files/download and /files/upload; the server checks the
// request's origin, this package everything else.
//
// Transfers stream: an upload goes from the request body to the remote
// file and a download from the remote file to the response through buffers
// of a fixed size, whatever the file's size.
//
// Concurrency: a Handler is safe for concurrent use. A request
// runs on its own goroutine (net/http's); the SFTP client of a session is
// shared by its requests, at most MaxTransfers of them transferring at once.
package files

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/pkg/sftp"
)

// Session is a live terminal as file transfers see it.
type Session interface {
	// SFTP returns the SFTP client on the terminal's SSH connection,
	// opened on first use (sshbridge.Session.SFTP).
	SFTP() (*sftp.Client, error)
	// Touch counts a listing or a transfer as activity for the
	// terminal's idle timer. It is called often while a transfer runs, so
	// it must be cheap.
	Touch()
	// ID identifies the terminal in logs and the audit log; it is not a
	// secret.
	ID() string
}

// Sessions finds the live terminal a files token belongs to
// (terminal.Manager, through the server).
type Sessions interface {
	// FilesSession returns the terminal of token, and false when the
	// token is unknown or its terminal has ended. It must compare tokens
	// in constant time.
	FilesSession(token string) (Session, bool)
}

// Transfer is one finished upload or download, as logged and audited. It
// never holds file contents.
type Transfer struct {
	Session   string // Session.ID
	Direction string // "upload" or "download"
	Path      string // the remote file
	Bytes     int64  // bytes transferred
	// Result is "ok", or why the transfer failed, as the user was told.
	Result   string
	Started  time.Time
	Duration time.Duration
}

// Config configures a Handler.
type Config struct {
	// Sessions finds the terminal of a token.
	Sessions Sessions
	// MaxUpload bounds an uploaded file in bytes (then 413); 0 means no
	// limit.
	MaxUpload int64
	// MaxTransfers bounds the uploads and downloads one terminal runs at
	// once (then 429); default 4.
	MaxTransfers int
	// Logger receives one line per transfer; nil discards them.
	Logger *slog.Logger
	// Audit, when set, is called with every finished transfer.
	Audit func(Transfer)
}

// Handler serves the files endpoints.
type Handler struct {
	cfg Config
	log *slog.Logger

	mu   sync.Mutex
	busy map[Session]int // transfers running, per terminal; absent when none
}

// New returns a Handler.
func New(cfg Config) *Handler {
	if cfg.MaxTransfers <= 0 {
		cfg.MaxTransfers = 4
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Handler{cfg: cfg, log: cfg.Logger, busy: make(map[Session]int)}
}

// open starts a request: it authenticates it by its bearer token, reads
// its path parameter (def stands for an absent one; see remotePath),
// counts it as activity of the terminal and returns the terminal's SFTP
// client. On failure it has answered, and ok is false.
func (h *Handler) open(w http.ResponseWriter, r *http.Request, def string) (sess Session, c *sftp.Client, path string, ok bool) {
	w.Header().Set("Cache-Control", "no-store")
	token, bearer := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if bearer {
		sess, bearer = h.cfg.Sessions.FilesSession(strings.TrimSpace(token))
	}
	if !bearer {
		w.Header().Set("WWW-Authenticate", `Bearer realm="alfresco-ssh"`)
		writeError(w, errToken)
		return nil, nil, "", false
	}
	sess.Touch()
	path, e := remotePath(r, def)
	if e == nil {
		c, e = client(sess)
	}
	if e != nil {
		writeError(w, e)
		return nil, nil, "", false
	}
	return sess, c, path, true
}

// begin reserves one of the terminal's transfer slots; end releases it.
// On failure it has answered 429.
func (h *Handler) begin(w http.ResponseWriter, sess Session) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.busy[sess] >= h.cfg.MaxTransfers {
		writeError(w, errBusy)
		return false
	}
	h.busy[sess]++
	return true
}

func (h *Handler) end(sess Session) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.busy[sess]--; h.busy[sess] <= 0 {
		delete(h.busy, sess)
	}
}

// record logs a finished transfer and hands it to the audit log.
func (h *Handler) record(t Transfer) {
	t.Duration = time.Since(t.Started)
	h.log.Info("file transfer", "session", t.Session, "direction", t.Direction, "path", t.Path,
		"bytes", t.Bytes, "result", t.Result, "duration", t.Duration)
	if h.cfg.Audit != nil {
		h.cfg.Audit(t)
	}
}

// writeJSON answers with v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
