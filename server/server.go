// Package server is the gateway's web side: the Echo application with the
// HTTP endpoints of both protocol generations, the terminal page and
// the Socket.IO namespace /ssh that drives terminals.
//
// Concurrency: a Server is safe for concurrent use. Each Socket.IO socket
// owns one terminal (package terminal), whose goroutines end when the
// shell ends, the client goes away, or Shutdown is called. Shutdown waits
// for all of them.
package server

import (
	"cmp"
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
	"github.com/alfresco-ssh/alfresco-ssh/files"
	"github.com/alfresco-ssh/alfresco-ssh/policy"
	"github.com/alfresco-ssh/alfresco-ssh/registry"
	"github.com/alfresco-ssh/alfresco-ssh/sshbridge"
	"github.com/alfresco-ssh/alfresco-ssh/terminal"
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
	// AllowedHosts are the host names (each optionally with ":port") the
	// gateway answers to, in the Host header or a trusted proxy's
	// X-Forwarded-Host; browser origins are checked against them too.
	// Empty or "*" means any host. Requests for other hosts get a 421: a
	// web page whose name was rebound to the gateway's address (DNS
	// rebinding) cannot use it.
	AllowedHosts []string
	// DocsURL, when set, is linked from the page a browser gets at the
	// bare address.
	DocsURL string
	// Files turns on file transfers over SFTP on each terminal's SSH
	// connection: connection-ready carries a files token and /files/
	// serves them (main's --files, on by default). FilesMaxUpload bounds
	// an uploaded file in bytes; 0 means no limit.
	Files          bool
	FilesMaxUpload int64
	// PageCSP is the Content-Security-Policy of the terminal page; empty
	// means a strict policy for the embedded page and none for a custom
	// template (a Flask page may load scripts from CDNs).
	PageCSP string
	// ResumeWindow keeps a session whose page opted in to resume for this
	// long after the page went away (0: resume off, the default here;
	// main's --resume-window is 60s). ResumeBuffer bounds the output such
	// a session keeps unacknowledged (default 256 KiB).
	ResumeWindow time.Duration
	ResumeBuffer int
	// BinaryMin is the least output read at once that goes as bytes to a
	// client that asked for binary output (default 8 KiB; tests lower it
	// to make every message binary).
	BinaryMin int
	// Observers are told about every terminal (metrics, audit).
	Observers []terminal.Observer
	// FilesAudit, when set, is told about every finished file transfer.
	FilesAudit func(files.Transfer)
	// Store keeps credentials until a terminal uses them; nil means a
	// memory store built from CredentialsKey, CredentialsTTL and
	// MaxCredentials. The server closes it on Shutdown.
	Store CredentialStore
	// BasePath, "" or "/prefix" without a trailing slash, puts every route
	// under the prefix.
	BasePath string
	// Transports are the Socket.IO transports accepted: "polling" and
	// "websocket" (default both).
	Transports []string
	// AdminToken, when set, must be sent as "Authorization: Bearer
	// <token>" to /admin/sessions; empty leaves those routes out.
	AdminToken string
	// Admin lists and ends sessions for /admin/sessions; nil means this
	// node's terminals only, under the name Node (default: the host
	// name).
	Admin SessionRegistry
	Node  string
	// NodeName, when set, is sent as "node" in the connection-ready of
	// resumable sessions, so that a balancer can route their resumes to
	// this node (deploy/nginx-websocket.conf); it is also Node's default.
	NodeName string
	// Requests counts HTTP requests; nil counts nothing.
	Requests RequestCounter
	// EmbedOrigins are the parent origins ("https://lab.example.com", or
	// "*" for any) the stock page's embedding API talks to over
	// window.postMessage; empty turns the API off.
	EmbedOrigins []string
	// Logger receives the server's logs; nil discards them.
	Logger *slog.Logger
}

// startGrace is how much longer than the SSH dial's timeout a socket may
// wait before its start-session (a dial that has begun has its own
// timeout).
const startGrace = 5 * time.Second

// defaultTransports are the Socket.IO transports accepted by default, as
// socket.io-client tries them.
var defaultTransports = []string{"polling", "websocket"}

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
	if c.SSH.Timeout <= 0 {
		c.SSH.Timeout = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.SSH.Logger == nil {
		c.SSH.Logger = c.Logger
	}
	if len(c.Transports) == 0 {
		c.Transports = defaultTransports
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
	store CredentialStore
	page  page
	echo  *echo.Echo
	io    *socket.Server
	http  *http.Server

	limits   policy.Limits
	terms    *terminal.Manager
	certs    *certReloader
	hosts    []allowedHost // nil: any
	gate     connectGate
	draining atomic.Bool // set by Drain: /readyz answers 503

	files *fileTransfers // nil when Config.Files is off
	admin SessionRegistry

	conns *connCount // engine connections

	mu      sync.Mutex
	closing bool
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
	pg, unknown := parsePage(string(tmpl), cfg.BasePath)
	pg.config = cfg.pageConfigAttr()
	if len(unknown) > 0 {
		cfg.Logger.Warn("page template has expressions that render empty", "expressions", unknown)
	}
	store := cfg.Store
	if store == nil {
		mem, err := credstore.NewMemory(cfg.CredentialsKey, cfg.CredentialsTTL, cfg.MaxCredentials)
		if err != nil {
			return nil, err
		}
		store = mem
	}
	s := &Server{
		cfg:    cfg,
		log:    cfg.Logger,
		store:  store,
		page:   pg,
		limits: newLimits(cfg),
		conns:  newConnCount(),
	}
	var err error
	s.terms = terminal.NewManager(terminal.Config{
		SSH:                cfg.SSH,
		Credentials:        store,
		Admit:              s.admitSession,
		Connect:            s.connectClient,
		ClientKey:          s.clientKey,
		StartTimeout:       cfg.SSH.Timeout + startGrace,
		FilesTokens:        cfg.Files,
		IdleTimeout:        cfg.IdleTimeout,
		MaxSessionDuration: cfg.MaxSessionDuration,
		OutputHead:         outputHead,
		OutputTail:         outputTail,
		BinaryHead:         binaryHead,
		BinaryMin:          cfg.BinaryMin,
		Observers:          cfg.Observers,
		ResumeWindow:       cfg.ResumeWindow,
		ResumeBuffer:       cfg.ResumeBuffer,
		Logger:             cfg.Logger,
	})
	if cfg.TLSCertFile != "" || cfg.TLSKeyFile != "" {
		if s.certs, err = newCertReloader(cfg.TLSCertFile, cfg.TLSKeyFile, cfg.Logger); err != nil {
			return nil, err
		}
	}
	if s.hosts, err = parseAllowedHosts(cfg.AllowedHosts); err != nil {
		return nil, err
	}
	s.files = s.newFileTransfers()
	s.admin = cfg.Admin
	if s.admin == nil {
		s.admin = registry.Local{Node: cmp.Or(cfg.Node, cfg.NodeName, hostname()), Terminals: s.terms}
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
	ln = capacityListener{ln, s.terms}
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

// capacityListener logs, once per interval, that accepting fails for want
// of file descriptors; http.Server retries such an Accept after a pause,
// and logs each attempt only at debug level.
type capacityListener struct {
	net.Listener
	terms *terminal.Manager
}

func (l capacityListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		l.terms.AtCapacity(err)
	}
	return c, err
}

// Terminals returns the registry of the gateway's terminals.
func (s *Server) Terminals() *terminal.Manager { return s.terms }

// OutputBytes returns how many bytes of terminal output the gateway has
// relayed so far.
func (s *Server) OutputBytes() uint64 { return s.terms.OutputBytes() }

// Shutdown stops the gateway in order: refuse new Socket.IO connections
// and credentials (the create endpoints answer 503), tell every live
// terminal why and close its SSH session, wait for the terminals and for
// the browsers to leave, then close Socket.IO, the credential store and
// the HTTP server. When ctx ends first, what is left is closed at once and
// ctx's error returned.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	err := s.terms.Shutdown(ctx)
	// Give browsers a moment to act on the DISCONNECT so they do not
	// reconnect in a storm; then close what is left.
	wait := time.NewTimer(clientsWait)
	select {
	case <-s.conns.none():
	case <-wait.C:
	case <-ctx.Done():
	}
	wait.Stop()
	closed := make(chan struct{})
	s.io.Close(func(error) { close(closed) })
	<-closed
	s.store.Close()
	if herr := s.http.Shutdown(ctx); herr != nil {
		s.http.Close()
		err = errors.Join(err, herr)
	}
	return err
}

// clientsWait bounds how long Shutdown waits for the browsers to leave
// once told.
const clientsWait = 2 * time.Second

// connCount counts the open engine connections.
type connCount struct {
	mu    sync.Mutex
	n     int
	empty chan struct{} // closed while n is 0
}

func newConnCount() *connCount {
	c := &connCount{empty: make(chan struct{})}
	close(c.empty)
	return c
}

// add counts a new connection until done is called.
func (c *connCount) add() (done func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == 0 {
		c.empty = make(chan struct{})
	}
	c.n++
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			if c.n--; c.n == 0 {
				close(c.empty)
			}
		})
	}
}

// none is closed while no connection is open.
func (c *connCount) none() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.empty
}

func (s *Server) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}
