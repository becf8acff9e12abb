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
	"net/netip"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/alfresco-ssh/alfresco-ssh/internal/gcfloor"
	"github.com/alfresco-ssh/alfresco-ssh/policy"
	"github.com/alfresco-ssh/alfresco-ssh/server"
	"github.com/alfresco-ssh/alfresco-ssh/sshbridge"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "2.0.0-dev"

//go:embed templates static
var assets embed.FS

// shutdownTimeout bounds a graceful stop.
const shutdownTimeout = 10 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "alfresco-ssh:", err)
		}
		os.Exit(2)
	}
}

// options are the command-line settings.
type options struct {
	host, template, term, trustedProxies string
	frameAncestors, apiToken, tokenFile  string
	allowedOrigins, pageCSP              string
	embedOrigins                         string
	hostKeyPolicy, knownHosts            string
	allowTargets, denyTargets            string
	tlsCert, tlsKey                      string
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
}

// parseFlags reads the flags; each one can also come from the environment
// variable ALFRESCO_SSH_<NAME> (upper case, dashes as underscores), which
// the command line overrides.
func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (*options, error) {
	var o options
	fs := flag.NewFlagSet("alfresco-ssh", flag.ContinueOnError)
	fs.SetOutput(stderr)
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
	fs.StringVar(&o.pageCSP, "page-csp", "", "Content-Security-Policy of the terminal page (default: strict for the embedded page, none for --template)")
	fs.IntVar(&o.gcFloorMiB, "gc-heap-floor-mib", gcfloor.DefaultFloor>>20, "while terminals print, keep the garbage collector's heap goal at least this many MiB over a small live heap, so that one printing at full speed does not make the collector, and every other terminal, stop dozens of times a second (0: the Go runtime's default pacing)")
	fs.StringVar(&o.trustedProxies, "trusted-proxies", "", "comma-separated IPs/CIDRs of reverse proxies whose X-Forwarded-* headers are trusted")
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		name := "ALFRESCO_SSH_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v := getenv(name); v != "" && envErr == nil {
			if err := fs.Set(f.Name, v); err != nil {
				envErr = fmt.Errorf("environment %s: %w", name, err)
			}
		}
	})
	if envErr != nil {
		return nil, envErr
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return &o, nil
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, getenv, stderr)
	if err != nil {
		return err
	}
	if o.version {
		fmt.Fprintln(stdout, "alfresco-ssh", version)
		return nil
	}
	cfg, addr, err := o.config(getenv)
	if err != nil {
		return err
	}
	level := slog.LevelInfo
	if o.debug {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	cfg.Logger = log
	cfg.SSH.Logger = log
	policy, err := sshbridge.ParseHostKeyPolicy(o.hostKeyPolicy)
	if err != nil {
		return fmt.Errorf("--host-key-policy: %w", err)
	}
	if cfg.SSH.HostKeys, err = sshbridge.NewHostKeys(policy, o.knownHosts, log); err != nil {
		return fmt.Errorf("--host-key-policy %s: %w", policy, err)
	}

	srv, err := server.New(cfg)
	if err != nil {
		return err
	}
	defer gcfloor.Start(uint64(o.gcFloorMiB)<<20, srv.OutputBytes)()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	scheme := "http"
	if cfg.TLSCertFile != "" {
		scheme = "https"
	}
	log.Info("listening", "addr", ln.Addr().String(), "scheme", scheme, "version", version)
	if cfg.APIToken == "" && !isLoopback(ln.Addr()) {
		log.Warn("no API token is set and the gateway listens beyond loopback: anyone who reaches it can open SSH connections through it (see --api-token)")
	}

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	select {
	case err := <-serveErr:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	err = srv.Shutdown(sctx)
	if serr := <-serveErr; err == nil {
		err = serr
	}
	return err
}

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
		SSH:                sshbridge.Config{Term: o.term, Timeout: o.sshTimeout},
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
	case o.maxDuration < 0:
		return cfg, "", errors.New("--max-session-duration must not be negative")
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
	cfg.APIToken = o.apiToken
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
	if strings.ContainsAny(o.pageCSP, "\r\n") {
		return cfg, "", errors.New("--page-csp must be one line")
	}
	cfg.PageCSP = o.pageCSP
	if k := getenv("CREDENTIALS_KEY"); k != "" {
		key, err := parseFernetKey(k)
		if err != nil {
			return cfg, "", err
		}
		cfg.CredentialsKey = key
	}
	return cfg, net.JoinHostPort(host, strconv.Itoa(o.port)), nil
}

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
