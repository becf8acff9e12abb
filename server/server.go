// Package server is the gateway's web side: the Echo application with the
// HTTP endpoints of both protocol generations, the terminal page and
// the Socket.IO namespace /ssh that drives terminals.
//
// Concurrency: a Server is safe for concurrent use. Each Socket.IO socket
// owns at most one terminal; a terminal's SSH session runs on one goroutine
// (plus one draining standard error) that ends when the shell ends, the
// client goes away, or Shutdown is called. Shutdown waits for all of them.
package server

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/zishang520/socket.io/servers/socket/v3"

	"github.com/alfresco-ssh/alfresco-ssh/credstore"
	"github.com/alfresco-ssh/alfresco-ssh/policy"
	"github.com/alfresco-ssh/alfresco-ssh/sshbridge"
)

// Config configures a Server. Zero values take the defaults noted.
type Config struct {
	// Assets holds templates/index.html and static/.
	Assets fs.FS
	// Template, when set, replaces templates/index.html (a page written for
	// the Flask server works as is).
	Template []byte
	// SSH configures outgoing connections.
	SSH sshbridge.Config
	// CredentialsKey is the secret that seals stored credentials; nil
	// means a random key for this process.
	CredentialsKey []byte
	// CredentialsTTL is how long unused credentials live (default 2m).
	CredentialsTTL time.Duration
	// MaxCredentials bounds pending credentials (default 10,000).
	MaxCredentials int
	// MaxBodyBytes bounds create-request bodies (default 64 KiB).
	MaxBodyBytes int64
	// MaxMessageBytes bounds one Socket.IO message, so one paste (default
	// 8 MiB).
	MaxMessageBytes int64
	// PingInterval and PingTimeout detect vanished browsers (defaults 10s
	// and 20s). Keep PingTimeout well above PingInterval: the Socket.IO
	// engine (v3.0.6) arms a ping's timeout only after writing the ping,
	// and a pong handled in between leaves that timeout armed, to be
	// cleared by the next ping only if it comes first (bench/README.md).
	PingInterval, PingTimeout time.Duration
	// FrameAncestors lists the origins that may show the terminal page in
	// a frame (CSP frame-ancestors sources, e.g. "'self'",
	// "https://lab.example.com"). Empty means any, as the Flask server
	// allowed.
	FrameAncestors []string
	// TrustedProxies are the addresses whose X-Forwarded-For,
	// X-Forwarded-Proto and X-Forwarded-Host headers are believed.
	TrustedProxies []netip.Prefix
	// IdleTimeout ends a terminal with no input and no output for this
	// long (default 30m; the page's own 10-minute timer is not trusted
	// alone). MaxSessionDuration, when set, ends every terminal after that
	// long.
	IdleTimeout, MaxSessionDuration time.Duration
	// Targets decides where the gateway may connect; nil allows every
	// address but link-local and cloud metadata ones.
	Targets *policy.TargetPolicy
	// Limits, each off when zero: concurrent terminals in total and per
	// client, credential creations per client per minute, and SSH
	// authentication failures (per client and per account, user@host:port,
	// within 10 minutes) before a back-off starting at 30 s.
	MaxSessions, MaxSessionsPerClient int
	CreatesPerMinute                  int
	AuthFailures                      int
	// ClientPrefix says how much of a client's address keys the per-client
	// limits (zero: /32 for IPv4, /64 for IPv6).
	ClientPrefix policy.ClientPrefix
	// Limits, where its fields are set, replace the in-memory limits built
	// from the numbers above, e.g. by ones that count across several
	// gateway nodes.
	Limits policy.Limits
	// TLSCertFile and TLSKeyFile, when set, make Serve speak HTTPS; the
	// files are re-read when they change.
	TLSCertFile, TLSKeyFile string
	// APIToken, when set, must be sent as "Authorization: Bearer <token>"
	// to the create endpoints.
	APIToken string
	// AllowedOrigins are browser origins accepted besides the gateway's
	// own, on the create endpoints and Socket.IO ("*": any).
	AllowedOrigins []string
	// PageCSP is the Content-Security-Policy of the terminal page; empty
	// means a strict policy for the embedded page and none for a custom
	// template (a Flask page may load scripts from CDNs).
	PageCSP string
	// EmbedOrigins are the parent origins ("https://lab.example.com", or
	// "*" for any) the stock page's embedding API talks to over
	// window.postMessage; empty turns the API off.
	EmbedOrigins []string
	// Logger receives the server's logs; nil discards them.
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.CredentialsTTL <= 0 {
		c.CredentialsTTL = 2 * time.Minute
	}
	if c.MaxCredentials <= 0 {
		c.MaxCredentials = 10000
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = 64 << 10
	}
	if c.MaxMessageBytes <= 0 {
		c.MaxMessageBytes = 8 << 20
	}
	if c.PingInterval <= 0 {
		c.PingInterval = 10 * time.Second
	}
	if c.PingTimeout <= 0 {
		c.PingTimeout = 20 * time.Second
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 30 * time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.SSH.Logger == nil {
		c.SSH.Logger = c.Logger
	}
	if c.Targets == nil {
		c.Targets = policy.NewTargetPolicy(nil, nil, nil)
	}
	if c.SSH.Dialer == nil {
		c.SSH.Dialer = c.Targets
	}
}

// Server is the gateway.
type Server struct {
	cfg   Config
	log   *slog.Logger
	store *credstore.Memory
	page  page
	echo  *echo.Echo
	io    *socket.Server
	http  *http.Server

	limits policy.Limits
	certs  *certReloader
	output atomic.Uint64 // bytes of terminal output relayed
	gate   connectGate

	mu        sync.Mutex
	closing   bool
	terminals map[*terminal]struct{}
	running   sync.WaitGroup // terminal session goroutines
}

// New builds a Server from cfg.
func New(cfg Config) (*Server, error) {
	cfg.setDefaults()
	tmpl := cfg.Template
	if tmpl == nil {
		var err error
		if tmpl, err = fs.ReadFile(cfg.Assets, "templates/index.html"); err != nil {
			return nil, fmt.Errorf("server: read page template: %w", err)
		}
	}
	pg, unknown := parsePage(string(tmpl))
	pg.config = cfg.pageConfigAttr()
	if len(unknown) > 0 {
		cfg.Logger.Warn("page template has expressions that render empty", "expressions", unknown)
	}
	store, err := credstore.NewMemory(cfg.CredentialsKey, cfg.CredentialsTTL, cfg.MaxCredentials)
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:       cfg,
		log:       cfg.Logger,
		store:     store,
		page:      pg,
		terminals: make(map[*terminal]struct{}),
		gate:      connectGate{pending: make(map[string]chan struct{})},
		limits:    newLimits(cfg),
	}
	if cfg.TLSCertFile != "" || cfg.TLSKeyFile != "" {
		if s.certs, err = newCertReloader(cfg.TLSCertFile, cfg.TLSKeyFile, cfg.Logger); err != nil {
			return nil, err
		}
	}
	s.io = s.newSocketIO()
	if s.echo, err = s.newEcho(); err != nil {
		return nil, err
	}
	s.http = &http.Server{
		Handler:           s.echo,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelDebug),
	}
	if s.certs != nil {
		s.http.TLSConfig = s.certs.TLSConfig()
	}
	return s, nil
}

// Handler returns the HTTP handler of the whole gateway.
func (s *Server) Handler() http.Handler { return s.echo }

// Serve serves HTTP on ln until Shutdown. It returns nil after a clean
// shutdown.
func (s *Server) Serve(ln net.Listener) error {
	var err error
	if s.certs != nil {
		err = s.http.ServeTLS(ln, "", "")
	} else {
		err = s.http.Serve(ln)
	}
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// OutputBytes returns how many bytes of terminal output the gateway has
// relayed so far.
func (s *Server) OutputBytes() uint64 { return s.output.Load() }

// Shutdown stops the gateway in order: refuse new Socket.IO connections,
// tell every live terminal why and close its SSH session, wait for the
// sessions and for the browsers to leave (up to ctx's deadline), then close
// Socket.IO and the HTTP server.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	terms := make([]*terminal, 0, len(s.terminals))
	for t := range s.terminals {
		terms = append(terms, t)
	}
	s.mu.Unlock()

	for _, t := range terms {
		t.stop(errShutdown)
	}
	done := make(chan struct{})
	go func() {
		s.running.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
	// Give browsers a moment to act on the DISCONNECT so they do not
	// reconnect in a storm; then close what is left.
	wait := time.NewTicker(10 * time.Millisecond)
	defer wait.Stop()
	deadline := time.After(2 * time.Second)
waitClients:
	for s.io.Engine().ClientsCount() > 0 {
		select {
		case <-wait.C:
		case <-deadline:
			break waitClients
		case <-ctx.Done():
			break waitClients
		}
	}
	closed := make(chan struct{})
	s.io.Close(func(error) { close(closed) })
	<-closed
	s.store.Close()
	return s.http.Shutdown(ctx)
}

// track registers a terminal for Shutdown; it reports false when the
// server is shutting down.
func (s *Server) track(t *terminal) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.terminals[t] = struct{}{}
	return true
}

func (s *Server) untrack(t *terminal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.terminals, t)
}

// beginSession counts a starting SSH session for Shutdown to wait on; it
// reports false when the server is shutting down. The caller calls
// s.running.Done when the session has ended.
func (s *Server) beginSession() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.running.Add(1)
	return true
}

func (s *Server) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}
