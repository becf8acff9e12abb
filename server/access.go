package server

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"
)

// Who may use the gateway: the API token on the create endpoints, the
// browser origins allowed on them and on Socket.IO, the client address
// behind trusted proxies, and the security headers of every response.

// ownPageCSP is the Content-Security-Policy of the embedded terminal page:
// only its own scripts, styles (xterm.js sets inline styles) and
// connections.
const ownPageCSP = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; " +
	"img-src 'self' data:; font-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'"

var (
	errOrigin = &requestError{http.StatusForbidden, "Origin not allowed"}
	errToken  = &requestError{http.StatusUnauthorized, "Missing or invalid API token"}
	errHost   = &requestError{http.StatusMisdirectedRequest, "Unknown host name: this gateway answers only to the names it is configured for"}
)

// allowedHost is an entry of Config.AllowedHosts: a lower-case name (an
// IPv6 address without brackets) and a port, "" for any.
type allowedHost struct{ name, port string }

func parseAllowedHosts(list []string) ([]allowedHost, error) {
	var hosts []allowedHost
	for _, entry := range list {
		if entry == "*" {
			return nil, nil
		}
		name, port := splitHost(entry)
		if name == "" || !validHost(name) || strings.ContainsAny(name, "%/") {
			return nil, fmt.Errorf("server: allowed host %q: want a host name or address, with an optional :port", entry)
		}
		if p, err := strconv.Atoi(port); port != "" && (err != nil || p < 1 || p > 65535) {
			return nil, fmt.Errorf("server: allowed host %q: bad port", entry)
		}
		hosts = append(hosts, allowedHost{name, port})
	}
	return hosts, nil
}

// splitHost splits "name", "name:port", "[v6]:port" or "[v6]" into the
// lower-case name (without brackets) and the port ("" when absent).
func splitHost(hostport string) (name, port string) {
	if h, p, err := net.SplitHostPort(hostport); err == nil {
		return strings.ToLower(h), p
	}
	return strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(hostport, "["), "]")), ""
}

// hostAllowed reports whether the gateway answers to hostport, reached
// with scheme (for the default port when hostport has none).
func (s *Server) hostAllowed(hostport, scheme string) bool {
	if s.hosts == nil {
		return true
	}
	name, port := splitHost(hostport)
	if port == "" {
		port = map[string]string{"http": "80", "https": "443", "ws": "80", "wss": "443"}[scheme]
	}
	for _, h := range s.hosts {
		if h.name == name && (h.port == "" || h.port == port) {
			return true
		}
	}
	return false
}

// checkHost refuses requests for a host the gateway does not answer to,
// except the health check (probes address the gateway by its IP).
// healthRoutes answer whatever the host name: probes address a node by
// its IP.
var healthRoutes = map[string]bool{"/healthz": true, "/livez": true, "/readyz": true}

func (s *Server) checkHost(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if healthRoutes[s.route(c)] || s.hostAllowed(s.requestHost(r), s.requestScheme(r)) {
			return next(c)
		}
		s.log.Info("refused request for a host name not in --allowed-hosts", "host", truncate(s.requestHost(r), 100),
			"path", truncate(r.URL.Path, 100), "client", s.clientIP(r))
		return errHost
	}
}

// securityHeaders sets the headers every response carries.
func (s *Server) securityHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		if c.Request().TLS != nil {
			h.Set("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
		}
		return next(c)
	}
}

// pageCSP is the Content-Security-Policy of the terminal page, with the
// operator's frame-ancestors. A custom template (a Flask page may load its
// scripts from CDNs) gets only what the operator configured.
func (s *Server) pageCSP() string {
	csp := s.cfg.PageCSP
	if csp == "" && s.cfg.Template == nil {
		csp = ownPageCSP
	}
	if len(s.cfg.FrameAncestors) > 0 {
		if csp != "" {
			csp += "; "
		}
		csp += "frame-ancestors " + strings.Join(s.cfg.FrameAncestors, " ")
	}
	return csp
}

// checkOrigin refuses browser requests from origins other than the
// gateway's own (an allowed host, or the host asked for when any is
// allowed) and the configured ones. Requests without an Origin header
// (server-to-server callers) pass.
func (s *Server) checkOrigin(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if !s.originAllowed(c.Request()) {
			s.log.Info("refused request from foreign origin", "origin", truncate(c.Request().Header.Get("Origin"), 100),
				"path", c.Request().URL.Path, "client", s.clientIP(c.Request()))
			return errOrigin
		}
		return next(c)
	}
}

func (s *Server) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	if s.listedOrigin(origin) {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false // includes "null"
	}
	if s.hosts != nil {
		return s.hostAllowed(u.Host, u.Scheme)
	}
	return strings.EqualFold(u.Host, s.requestHost(r))
}

// listedOrigin reports whether origin is one of --allowed-origins.
func (s *Server) listedOrigin(origin string) bool {
	for _, o := range s.cfg.AllowedOrigins {
		if o == "*" || strings.EqualFold(o, origin) {
			return true
		}
	}
	return false
}

// cors answers CORS for the create endpoints, so that pages of the
// --allowed-origins may call them from the browser.
func (s *Server) cors(next echo.HandlerFunc) echo.HandlerFunc {
	return s.corsFor(corsPolicy{methods: "POST", headers: "Content-Type, Authorization"})(next)
}

// corsPolicy is what pages of the --allowed-origins may do on a route:
// the methods and request headers they may use, and the response headers
// beyond the simple ones they may read.
type corsPolicy struct{ methods, headers, expose string }

// corsFor answers CORS with policy p.
func (s *Server) corsFor(p corsPolicy) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			origin := c.Request().Header.Get("Origin")
			if origin == "" || !s.listedOrigin(origin) {
				return next(c)
			}
			h := c.Response().Header()
			h.Set("Access-Control-Allow-Origin", origin)
			h.Add("Vary", "Origin")
			if p.expose != "" {
				h.Set("Access-Control-Expose-Headers", p.expose)
			}
			if c.Request().Method != http.MethodOptions {
				return next(c)
			}
			h.Set("Access-Control-Allow-Methods", p.methods)
			h.Set("Access-Control-Allow-Headers", p.headers)
			h.Set("Access-Control-Max-Age", "600")
			return c.NoContent(http.StatusNoContent)
		}
	}
}

// requireToken checks the bearer token of the create endpoints, when one is
// configured, in constant time.
func (s *Server) requireToken(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if s.cfg.APIToken == "" {
			return next(c)
		}
		if !bearerMatches(c.Request(), s.cfg.APIToken) {
			c.Response().Header().Set("WWW-Authenticate", `Bearer realm="alfresco-ssh"`)
			return errToken
		}
		return next(c)
	}
}

// bearerMatches reports whether r carries "Authorization: Bearer <token>",
// comparing in constant time.
func bearerMatches(r *http.Request, token string) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	want := sha256.Sum256([]byte(token))
	have := sha256.Sum256([]byte(strings.TrimSpace(got)))
	return ok && subtle.ConstantTimeCompare(want[:], have[:]) == 1
}

func (s *Server) fromTrustedProxy(r *http.Request) bool {
	addr, err := netip.ParseAddrPort(r.RemoteAddr)
	return err == nil && s.trusted(addr.Addr())
}

func (s *Server) trusted(ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// clientIP is the address of the client. Behind trusted proxies it is the
// nearest address in X-Forwarded-For that is not itself a trusted proxy.
func (s *Server) clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if !s.fromTrustedProxy(r) {
		return host
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		ip, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break
		}
		if !s.trusted(ip) {
			return ip.Unmap().String()
		}
	}
	return host
}
