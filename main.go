// Command alfresco-ssh is a web SSH gateway: a browser terminal (xterm.js)
// talks Socket.IO to this server, which holds the SSH connection. It is a
// drop-in replacement for the Flask alfresco-ssh server.
package main

import (
	"context"
	"embed"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/signal"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/alfresco-ssh/alfresco-ssh/credstore"
	"github.com/alfresco-ssh/alfresco-ssh/internal/gcfloor"
	"github.com/alfresco-ssh/alfresco-ssh/internal/spareprocs"
	"github.com/alfresco-ssh/alfresco-ssh/policy"
	"github.com/alfresco-ssh/alfresco-ssh/redislimit"
	"github.com/alfresco-ssh/alfresco-ssh/server"
	"github.com/alfresco-ssh/alfresco-ssh/sshbridge"
)

//go:embed templates static
var assets embed.FS

// shutdownTimeout bounds a graceful stop.
const shutdownTimeout = 10 * time.Second

func main() {
	// SIGINT stops at once; run drains on SIGTERM (see serveUntilStopped).
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		stop()
		os.Exit(errorExit(err, os.Stderr))
	}
}

// options are the command-line settings.
type options struct {
	host, template, term, trustedProxies string
	frameAncestors, apiToken, tokenFile  string
	allowedOrigins, pageCSP              string
	embedOrigins                         string
	allowedHosts, docsURL                string
	hostKeyPolicy, knownHosts            string
	allowTargets, denyTargets            string
	tlsCert, tlsKey                      string
	store, metricsAddr                   string
	transports, basePath                 string
	auditLog, adminToken                 string
	nodeName                             string
	drainGrace, drainTimeout             time.Duration
	maxSessions, maxPerClient            int
	createRate, authFailures             int
	clientPrefixV4, clientPrefixV6       int
	port                                 int
	debug, version                       bool
	credentialsTTL, sshTimeout           time.Duration
	idleTimeout, maxDuration             time.Duration
	maxCredentials                       int
	maxBody                              int64
	gcFloorMiB                           int
	spareProcs                           int
	files                                bool
	filesMaxUpload                       int64
	resumeWindow, keepaliveInterval      time.Duration
	resumeBuffer, keepaliveCount         int
}

// parseFlags reads the flags (defined in flagSet); each can also come from
// its environment variable (see envName), which the command line
// overrides. It prints the help and returns flag.ErrHelp for --help.
func parseFlags(args []string, getenv func(string) string, stdout io.Writer) (*options, error) {
	var o options
	fs := o.flagSet()
	lastBad := checkFlags(fs)
	if err := setFromEnv(fs, getenv); err != nil {
		return nil, err
	}
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		printHelp(stdout, fs)
		return nil, err
	} else if err != nil {
		if bad := lastBad(); bad != "" {
			return nil, &usageError{bad}
		}
		return nil, &usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return nil, usagef("unexpected argument %q", fs.Arg(0))
	}
	return &o, nil
}

// flagSet defines the flags, one line each (a new flag needs a field in
// options, a line here, and a row in the README's table), on a set that
// reports nothing itself: parseFlags does.
func (o *options) flagSet() *flag.FlagSet {
	fs := flag.NewFlagSet("alfresco-ssh", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.IntVar(&o.port, "port", 5000, "TCP port to listen on")
	fs.StringVar(&o.host, "host", "localhost", `where to listen: "localhost" (127.0.0.1), "localnetwork" (all interfaces) or an IP address`)
	fs.BoolVar(&o.debug, "debug", false, "log debug messages")
	fs.BoolVar(&o.version, "version", false, "print the version and exit")
	fs.StringVar(&o.template, "template", "", "terminal page template `file` (Jinja-style {{ credentials_uuid }} / {{ create_session_id }})")
	fs.DurationVar(&o.credentialsTTL, "credentials-ttl", 2*time.Minute, "how long unused credentials are kept")
	fs.StringVar(&o.term, "term", "xterm-256color", "TERM of the remote PTY")
	fs.DurationVar(&o.sshTimeout, "ssh-timeout", 10*time.Second, "SSH connect, handshake and login timeout")
	fs.DurationVar(&o.idleTimeout, "idle-timeout", 30*time.Minute, "end a terminal after this long without input or output")
	fs.DurationVar(&o.maxDuration, "max-session-duration", 0, "end every terminal after this long (0: no limit)")
	fs.DurationVar(&o.resumeWindow, "resume-window", 60*time.Second, "keep the session of a page that opted in to resume this long after its connection dropped, so that it can take it back (0: resume off)")
	fs.IntVar(&o.resumeBuffer, "resume-buffer", 256<<10, "bytes of output a resumable session keeps until the page acknowledges them; when full, the remote is paused")
	fs.DurationVar(&o.keepaliveInterval, "ssh-keepalive-interval", 15*time.Second, "probe the remote host this often (keepalive@openssh.com; 0: off)")
	fs.IntVar(&o.keepaliveCount, "ssh-keepalive-count", 3, "end a session when this many probes in a row go unanswered")
	fs.StringVar(&o.hostKeyPolicy, "host-key-policy", "accept", `SSH host key verification: "accept" (any key, fingerprint logged), "known-hosts" (only keys in --known-hosts) or "tofu" (learn new hosts into --known-hosts, refuse changed keys)`)
	fs.StringVar(&o.knownHosts, "known-hosts", "", "OpenSSH known_hosts `file` for the known-hosts and tofu policies (re-read when it changes)")
	fs.StringVar(&o.allowTargets, "allow-targets", "", `comma-separated targets the gateway may connect to: CIDRs, IPs, host names with * and ?, each with an optional :port or :low-high (e.g. "10.0.0.0/8:22,*.lab.example.com"); empty allows all but --deny-targets`)
	fs.StringVar(&o.denyTargets, "deny-targets", "", "comma-separated targets the gateway must not connect to, same syntax; link-local and cloud metadata addresses are always denied unless explicitly allowed")
	fs.IntVar(&o.maxSessions, "max-sessions", 5000, "most concurrent terminals in total (0: no limit)")
	fs.IntVar(&o.maxPerClient, "max-sessions-per-client", 500, "most concurrent terminals per client address (0: no limit)")
	fs.IntVar(&o.createRate, "create-rate", 600, "most credential creations per client address per minute (0: no limit)")
	fs.IntVar(&o.authFailures, "auth-failures", 10, "SSH login failures per client address, and per account (user on host:port), within 10 minutes before logins are refused with a growing back-off; logins in progress count, more wait (0: no limit)")
	fs.IntVar(&o.clientPrefixV4, "client-prefix-v4", 32, "IPv4 clients are counted by this prefix length of their address in the per-client limits (1-32)")
	fs.IntVar(&o.clientPrefixV6, "client-prefix-v6", 64, "IPv6 clients are counted by this prefix length of their address in the per-client limits (1-128; one host or subscriber usually holds a /64)")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "serve HTTPS with this certificate `file` (PEM, re-read when it changes)")
	fs.StringVar(&o.tlsKey, "tls-key", "", "private key `file` of --tls-cert")
	fs.IntVar(&o.maxCredentials, "max-credentials", 10000, "most credentials waiting to be used")
	fs.Int64Var(&o.maxBody, "max-body", 64<<10, "largest create-request body in bytes")
	fs.StringVar(&o.frameAncestors, "frame-ancestors", "*", `origins allowed to embed the terminal page in a frame, space-separated CSP sources (e.g. "'self' https://lab.example.com"); "*" allows any`)
	fs.StringVar(&o.apiToken, "api-token", "", "token required as \"Authorization: Bearer <token>\" on the create endpoints (prefer ALFRESCO_SSH_API_TOKEN or --api-token-file)")
	fs.StringVar(&o.tokenFile, "api-token-file", "", "read the API token from this `file`")
	fs.StringVar(&o.allowedOrigins, "allowed-origins", "", `comma-separated browser origins accepted besides the gateway's own (e.g. "https://lab.example.com"); "*" accepts any`)
	fs.StringVar(&o.embedOrigins, "embed-origins", "", `comma-separated origins of parent pages the terminal page talks to over window.postMessage (the embedding API, e.g. "https://lab.example.com"); "*" talks to any; empty turns it off`)
	fs.StringVar(&o.allowedHosts, "allowed-hosts", "", `comma-separated host names, each with an optional :port, that requests may address (Host, or a trusted proxy's X-Forwarded-Host); others get a 421. "*" allows any. Default: on loopback only localhost, 127.0.0.1 and [::1] with the port; beyond loopback any, with a warning`)
	fs.StringVar(&o.docsURL, "docs-url", "", "address of the documentation, linked from the page a browser gets at the bare address")
	fs.StringVar(&o.pageCSP, "page-csp", "", "Content-Security-Policy of the terminal page (default: strict for the embedded page, none for --template)")
	fs.IntVar(&o.spareProcs, "spare-procs", spareprocs.Default, "Go scheduler Ps (GOMAXPROCS) beyond the CPUs the gateway may use, so that a terminal's keystrokes do not wait behind a flooding neighbour whose thread the kernel preempted (0: the Go default; a GOMAXPROCS environment variable wins)")
	fs.IntVar(&o.gcFloorMiB, "gc-heap-floor-mib", gcfloor.DefaultFloor>>20, "while terminals print, keep the garbage collector's heap goal at least this many MiB over a small live heap, so that one printing at full speed does not make the collector, and every other terminal, stop dozens of times a second (0: the Go runtime's default pacing)")
	fs.StringVar(&o.store, "store", "memory", `where credentials wait until used: "memory" (this process) or a Redis server, redis://[user:pass@]host:port/db (rediss:// for TLS), shared by every node that has the same CREDENTIALS_KEY`)
	fs.StringVar(&o.metricsAddr, "metrics-addr", "", "serve Prometheus metrics at http://`ADDR`/metrics, a listener of its own (e.g. 127.0.0.1:9100); empty: off")
	fs.StringVar(&o.transports, "transports", "polling,websocket", `Socket.IO transports accepted, comma-separated: "polling,websocket", or "websocket" alone behind a balancer without stickiness`)
	fs.StringVar(&o.basePath, "base-path", "", "serve every route under this path `prefix` (e.g. /lab/terminal), for a reverse proxy that forwards a sub-path")
	fs.StringVar(&o.auditLog, "audit-log", "", "append the audit log (one JSON line per session start, end, failed start and file transfer) to this `file`, reopened on SIGHUP; \"-\" writes it to stderr; empty: off")
	fs.DurationVar(&o.drainGrace, "drain-grace", 5*time.Second, "on SIGTERM, keep taking new sessions this long while /readyz tells the balancer to stop sending them")
	fs.DurationVar(&o.drainTimeout, "drain-timeout", 30*time.Second, "on SIGTERM, let live terminals run on this long (from the signal) before they are closed")
	fs.StringVar(&o.adminToken, "admin-token", "", "token required as \"Authorization: Bearer <token>\" on /admin/sessions, which lists and ends sessions (prefer ALFRESCO_SSH_ADMIN_TOKEN); empty: no admin endpoints")
	fs.StringVar(&o.nodeName, "node-name", "", "this node's `name` (letters, digits, '.', '_', '-'; at most 63), sent to resumable sessions so that the balancer can route their resumes here (deploy/nginx-websocket.conf), and shown by /admin/sessions; empty: no routing, host:port in the admin list")
	fs.BoolVar(&o.files, "files", true, "file transfers over SFTP on each terminal's own SSH connection: a file panel in the page and the /files/ endpoints")
	fs.Int64Var(&o.filesMaxUpload, "files-max-upload", 0, "largest file an upload may hold, in bytes, then 413 (0: no limit)")
	fs.StringVar(&o.trustedProxies, "trusted-proxies", "", "comma-separated IPs/CIDRs of reverse proxies whose X-Forwarded-* headers are trusted")
	return fs
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, getenv, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	if o.version {
		fmt.Fprintln(stdout, "alfresco-ssh", buildVersion())
		return nil
	}
	cfg, addr, err := o.config(getenv)
	if err != nil {
		return &usageError{err.Error()}
	}
	level := slog.LevelInfo
	if o.debug {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	cfg.Logger = log
	cfg.SSH.Logger = log
	keyPolicy, err := sshbridge.ParseHostKeyPolicy(o.hostKeyPolicy)
	if err != nil {
		return usagef("--host-key-policy: %v", err)
	}
	if cfg.SSH.HostKeys, err = sshbridge.NewHostKeys(keyPolicy, o.knownHosts, log); err != nil {
		return usagef("--host-key-policy %s: %v", keyPolicy, err)
	}

	files := checkFileLimit(log, o.maxSessions, raiseFileLimit)

	store, err := o.openStore(cfg)
	if err != nil {
		return err
	}
	cfg.Store = store
	if r, ok := store.(*credstore.Redis); ok && o.createRate > 0 {
		// Creations count across every node sharing the Redis.
		cfg.Limits.Creates = redislimit.NewRate(r.Client(), "create", o.createRate, time.Minute)
	}
	if r, ok := store.(*credstore.Redis); ok && o.authFailures > 0 {
		// So do failed logins, with the in-memory back-off's timing; a
		// reservation lasts at most a login.
		cfg.Limits.Logins = redislimit.NewLogin(r.Client(), o.authFailures,
			policy.LoginWindow, policy.LoginBackoff, policy.LoginMaxBackoff, o.sshTimeout+30*time.Second)
	}
	ops, err := o.openOperations(&cfg, store, log, stderr)
	if err != nil {
		store.Close()
		return err
	}
	defer ops.close()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		store.Close()
		return err
	}
	if o.allowedHosts == "" {
		cfg.AllowedHosts = loopbackHosts(ln.Addr())
	}
	ops.openRegistry(&cfg, store, ln.Addr())
	srv, err := server.New(cfg)
	if err != nil {
		ln.Close()
		store.Close()
		return err
	}
	defer gcfloor.Start(uint64(o.gcFloorMiB)<<20, srv.OutputBytes)()
	defer spareprocs.Set(o.spareProcs)()
	ops.attach(srv)
	scheme := "http"
	if cfg.TLSCertFile != "" {
		scheme = "https"
	}
	if cfg.APIToken == "" && !isLoopback(ln.Addr()) {
		log.Warn("no API token is set and the gateway listens beyond loopback: anyone who reaches it can open SSH connections through it (see --api-token)")
	}
	if len(cfg.AllowedHosts) == 0 && o.allowedHosts == "" {
		log.Warn("any host name is accepted: a web page whose name is made to resolve to this gateway's address (DNS rebinding) can use it from its visitors' browsers; set --allowed-hosts to the names clients use")
	}
	log.Info("listening", "addr", ln.Addr().String(), "scheme", scheme, "version", buildVersion(), "open_files_limit", files)

	if o.store != "memory" {
		log.Info("credential store", "store", "redis", "addr", redactURL(o.store))
	}
	var metricsSrv *http.Server
	metricsErr, metricsDone := make(chan error, 1), make(chan struct{})
	if ops.metrics != nil {
		mln, err := net.Listen("tcp", o.metricsAddr)
		if err != nil {
			ln.Close()
			srv.Shutdown(ctx)
			return fmt.Errorf("--metrics-addr: %w", err)
		}
		log.Info("metrics listening", "addr", mln.Addr().String())
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", ops.metrics.Handler())
		metricsSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := metricsSrv.Serve(mln); !errors.Is(err, http.ErrServerClosed) {
				metricsErr <- err
			}
			close(metricsDone)
		}()
	}

	sigs, stopSignals := notifySignals()
	defer stopSignals()
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	err = ops.serveUntilStopped(ctx, srv, sigs, serveErr, metricsErr)
	if metricsSrv != nil {
		mctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		metricsSrv.Shutdown(mctx)
		<-metricsDone
	}
	return err
}

// openStore opens the credential store of --store.
func (o *options) openStore(cfg server.Config) (server.CredentialStore, error) {
	if o.store == "memory" {
		return credstore.NewMemory(cfg.CredentialsKey, cfg.CredentialsTTL, cfg.MaxCredentials)
	}
	return credstore.NewRedis(o.store, cfg.CredentialsKey, cfg.CredentialsTTL, cfg.MaxCredentials)
}

// redactURL is a store URL without its password, for the log.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable)"
	}
	return u.Redacted()
}

// nodeName is what --node-name may be: a value of a URL query and of an
// nginx map as it is.
var nodeName = regexp.MustCompile(`^[A-Za-z0-9._-]{1,63}$`)

// config turns the options into the server configuration and the listen
// address.
func (o *options) config(getenv func(string) string) (server.Config, string, error) {
	cfg := server.Config{
		Assets:             assets,
		CredentialsTTL:     o.credentialsTTL,
		MaxCredentials:     o.maxCredentials,
		MaxBodyBytes:       o.maxBody,
		IdleTimeout:        o.idleTimeout,
		MaxSessionDuration: o.maxDuration,
		ResumeWindow:       o.resumeWindow,
		ResumeBuffer:       o.resumeBuffer,
		SSH: sshbridge.Config{Term: o.term, Timeout: o.sshTimeout,
			KeepaliveInterval: o.keepaliveInterval, KeepaliveCount: o.keepaliveCount},
	}
	var host string
	switch o.host {
	case "localhost":
		host = "127.0.0.1"
	case "localnetwork":
		host = ""
	default:
		ip, err := netip.ParseAddr(o.host)
		if err != nil {
			return cfg, "", fmt.Errorf(`--host must be "localhost", "localnetwork" or an IP address, got %q`, o.host)
		}
		host = ip.String()
	}
	switch {
	case o.port < 0 || o.port > 65535:
		return cfg, "", fmt.Errorf("--port must be from 0 to 65535, got %d", o.port)
	case o.credentialsTTL <= 0, o.sshTimeout <= 0, o.idleTimeout <= 0:
		return cfg, "", errors.New("--credentials-ttl, --ssh-timeout and --idle-timeout must be positive")
	case o.maxDuration < 0, o.resumeWindow < 0, o.keepaliveInterval < 0:
		return cfg, "", errors.New("--max-session-duration, --resume-window and --ssh-keepalive-interval must not be negative")
	case o.resumeBuffer < 4<<10:
		return cfg, "", errors.New("--resume-buffer must be at least 4096 bytes")
	case o.keepaliveCount < 1:
		return cfg, "", errors.New("--ssh-keepalive-count must be at least 1")
	case o.maxCredentials <= 0, o.maxBody <= 0:
		return cfg, "", errors.New("--max-credentials and --max-body must be positive")
	case o.term == "" || strings.ContainsAny(o.term, " \t\r\n"):
		return cfg, "", fmt.Errorf("--term must be a terminal name, got %q", o.term)
	}
	if o.template != "" {
		b, err := os.ReadFile(o.template)
		if err != nil {
			return cfg, "", fmt.Errorf("--template: %w", err)
		}
		cfg.Template = b
	}
	for p := range strings.SplitSeq(o.trustedProxies, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		prefix, err := parsePrefix(p)
		if err != nil {
			return cfg, "", fmt.Errorf("--trusted-proxies: %w", err)
		}
		cfg.TrustedProxies = append(cfg.TrustedProxies, prefix)
	}
	if fa := strings.Fields(o.frameAncestors); !(len(fa) == 1 && fa[0] == "*") {
		for _, src := range fa {
			if strings.ContainsAny(src, ";,\"") {
				return cfg, "", fmt.Errorf("--frame-ancestors: invalid source %q", src)
			}
		}
		if len(fa) == 0 {
			fa = []string{"'none'"}
		}
		cfg.FrameAncestors = fa
	}
	allow, err := policy.ParseTargetRules(o.allowTargets)
	if err != nil {
		return cfg, "", fmt.Errorf("--allow-targets: %w", err)
	}
	deny, err := policy.ParseTargetRules(o.denyTargets)
	if err != nil {
		return cfg, "", fmt.Errorf("--deny-targets: %w", err)
	}
	cfg.Targets = policy.NewTargetPolicy(allow, deny, nil)
	if o.maxSessions < 0 || o.maxPerClient < 0 || o.createRate < 0 || o.authFailures < 0 {
		return cfg, "", errors.New("--max-sessions, --max-sessions-per-client, --create-rate and --auth-failures must not be negative")
	}
	if o.filesMaxUpload < 0 {
		return cfg, "", fmt.Errorf("--files-max-upload: got %d, want 0 (no limit) or more", o.filesMaxUpload)
	}
	cfg.Files, cfg.FilesMaxUpload = o.files, o.filesMaxUpload
	if o.spareProcs < 0 {
		return cfg, "", fmt.Errorf("--spare-procs: got %d, want 0 or more", o.spareProcs)
	}
	if o.gcFloorMiB < 0 {
		return cfg, "", fmt.Errorf("--gc-heap-floor-mib: got %d, want 0 or more", o.gcFloorMiB)
	}
	if o.clientPrefixV4 < 1 || o.clientPrefixV4 > 32 || o.clientPrefixV6 < 1 || o.clientPrefixV6 > 128 {
		return cfg, "", fmt.Errorf("--client-prefix-v4 must be from 1 to 32 and --client-prefix-v6 from 1 to 128, got %d and %d", o.clientPrefixV4, o.clientPrefixV6)
	}
	cfg.ClientPrefix = policy.ClientPrefix{V4: o.clientPrefixV4, V6: o.clientPrefixV6}
	cfg.MaxSessions, cfg.MaxSessionsPerClient = o.maxSessions, o.maxPerClient
	cfg.CreatesPerMinute, cfg.AuthFailures = o.createRate, o.authFailures
	if (o.tlsCert == "") != (o.tlsKey == "") {
		return cfg, "", errors.New("--tls-cert and --tls-key go together")
	}
	cfg.TLSCertFile, cfg.TLSKeyFile = o.tlsCert, o.tlsKey
	// Tokens from secrets often end in a newline; a client's never does.
	cfg.APIToken = strings.TrimSpace(o.apiToken)
	if o.tokenFile != "" {
		b, err := os.ReadFile(o.tokenFile)
		if err != nil {
			return cfg, "", fmt.Errorf("--api-token-file: %w", err)
		}
		cfg.APIToken = strings.TrimSpace(string(b))
		if cfg.APIToken == "" {
			return cfg, "", errors.New("--api-token-file: the file is empty")
		}
	}
	for origin := range strings.SplitSeq(o.allowedOrigins, ",") {
		if origin = strings.TrimSpace(origin); origin != "" {
			cfg.AllowedOrigins = append(cfg.AllowedOrigins, strings.TrimSuffix(origin, "/"))
		}
	}
	if cfg.EmbedOrigins, err = parseEmbedOrigins(o.embedOrigins); err != nil {
		return cfg, "", fmt.Errorf("--embed-origins: %w", err)
	}
	for h := range strings.SplitSeq(o.allowedHosts, ",") {
		if h = strings.TrimSpace(h); h != "" {
			cfg.AllowedHosts = append(cfg.AllowedHosts, h)
		}
	}
	if o.docsURL != "" {
		if u, err := url.Parse(o.docsURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return cfg, "", fmt.Errorf("--docs-url: got %q, want an http(s) URL", o.docsURL)
		}
		cfg.DocsURL = o.docsURL
	}
	if strings.ContainsAny(o.pageCSP, "\r\n") {
		return cfg, "", errors.New("--page-csp must be one line")
	}
	cfg.PageCSP = o.pageCSP
	cfg.AdminToken = strings.TrimSpace(o.adminToken)
	if o.nodeName != "" && !nodeName.MatchString(o.nodeName) {
		return cfg, "", fmt.Errorf("--node-name: got %q, want 1 to 63 letters, digits, '.', '_' or '-'", o.nodeName)
	}
	cfg.NodeName = o.nodeName
	if k := getenv("CREDENTIALS_KEY"); k != "" {
		key, err := parseFernetKey(k)
		if err != nil {
			return cfg, "", err
		}
		cfg.CredentialsKey = key
	}
	if err := o.checkOperations(&cfg); err != nil {
		return cfg, "", err
	}
	return cfg, net.JoinHostPort(host, strconv.Itoa(o.port)), nil
}

// What a terminal holds open: the browser's connection and the SSH
// connection. fdMargin covers the listeners, files and connections that
// are not terminals.
const (
	fdsPerTerminal = 2
	fdMargin       = 256
)

// checkFileLimit raises the limit on open files as far as it goes, warns
// when the limit cannot cover maxSessions terminals, and returns it (0:
// none known).
func checkFileLimit(log *slog.Logger, maxSessions int, raise func() (uint64, error)) uint64 {
	limit, err := raise()
	if err != nil {
		log.Warn("could not raise the open-file limit to its hard limit", "limit", limit, "err", err)
	}
	if need := uint64(maxSessions)*fdsPerTerminal + fdMargin; maxSessions > 0 && limit > 0 && limit < need {
		log.Warn("the open-file limit cannot cover --max-sessions: raise the hard limit (ulimit -Hn, systemd LimitNOFILE=, docker --ulimit nofile=) or lower --max-sessions",
			"limit", limit, "max_sessions", maxSessions, "needed", need)
	}
	return limit
}

// loopbackHosts are the names a gateway on loopback answers to by default:
// localhost, 127.0.0.1 and [::1], with its port. Beyond loopback: none,
// that is any.
func loopbackHosts(a net.Addr) []string {
	if !isLoopback(a) {
		return nil
	}
	port := strconv.Itoa(a.(*net.TCPAddr).Port)
	return []string{"localhost:" + port, "127.0.0.1:" + port, "[::1]:" + port}
}

// checkOperations validates --store, --transports, --base-path and the
// drain durations into cfg.
func (o *options) checkOperations(cfg *server.Config) error {
	if o.store != "memory" {
		u, err := url.Parse(o.store)
		if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" {
			return errors.New(`--store must be "memory" or redis://host:port/db (rediss:// for TLS)`)
		}
		if cfg.CredentialsKey == nil {
			return errors.New("--store redis needs CREDENTIALS_KEY, the same on every node, to seal the credentials")
		}
	}
	for name := range strings.SplitSeq(o.transports, ",") {
		name = strings.TrimSpace(name)
		if name != "polling" && name != "websocket" || slices.Contains(cfg.Transports, name) {
			return fmt.Errorf(`--transports must list "polling" and/or "websocket" once each, got %q`, o.transports)
		}
		cfg.Transports = append(cfg.Transports, name)
	}
	base := strings.TrimSuffix(o.basePath, "/")
	if base != "" && (!validBasePath.MatchString(base) || slices.ContainsFunc(strings.Split(base, "/"), func(seg string) bool {
		return seg == "." || seg == ".."
	})) {
		return fmt.Errorf("--base-path must be a path like /lab/terminal (letters, digits, -._~), got %q", o.basePath)
	}
	cfg.BasePath = base
	if o.drainGrace < 0 || o.drainTimeout < 0 {
		return errors.New("--drain-grace and --drain-timeout must not be negative")
	}
	return nil
}

var validBasePath = regexp.MustCompile(`^(/[A-Za-z0-9._~-]+)+$`)

func isLoopback(a net.Addr) bool {
	tcp, ok := a.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}

// parsePrefix reads a CIDR or a single address.
func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	ip, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(ip, ip.BitLen()), nil
}

// parseEmbedOrigins reads comma-separated origins as a browser writes
// them in MessageEvent.origin (scheme://host[:port], lower case, no default
// port), or "*" for any.
func parseEmbedOrigins(list string) ([]string, error) {
	var origins []string
	for o := range strings.SplitSeq(list, ",") {
		if o = strings.TrimSpace(o); o == "" {
			continue
		}
		if o == "*" {
			return []string{"*"}, nil
		}
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
			(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
			return nil, fmt.Errorf("%q is not an origin such as https://lab.example.com", o)
		}
		host := strings.ToLower(u.Host)
		if p := u.Port(); (u.Scheme == "http" && p == "80") || (u.Scheme == "https" && p == "443") {
			host = strings.TrimSuffix(host, ":"+p)
		}
		origins = append(origins, u.Scheme+"://"+host)
	}
	return origins, nil
}

// parseFernetKey decodes a Fernet key: 32 bytes in URL-safe base64.
func parseFernetKey(k string) ([]byte, error) {
	k = strings.TrimSpace(k)
	key, err := base64.URLEncoding.DecodeString(k)
	if err != nil {
		key, err = base64.RawURLEncoding.DecodeString(k)
	}
	if err != nil || len(key) != 32 {
		return nil, errors.New("CREDENTIALS_KEY must be a Fernet key: 32 bytes in URL-safe base64 (44 characters)")
	}
	return key, nil
}
