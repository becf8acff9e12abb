package server

import (
	"crypto/sha256"
	"crypto/subtle"
	"net"
	"net/http"
	"net/netip"
	"net/url"
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
)

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
// gateway's own and the configured ones. Requests without an Origin header
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
	host := r.Host
	if s.fromTrustedProxy(r) {
		if h := firstHeaderValue(r, "X-Forwarded-Host"); h != "" {
			host = h
		}
	}
	return strings.EqualFold(u.Host, host)
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
		got, ok := strings.CutPrefix(c.Request().Header.Get("Authorization"), "Bearer ")
		want := sha256.Sum256([]byte(s.cfg.APIToken))
		have := sha256.Sum256([]byte(strings.TrimSpace(got)))
		if !ok || subtle.ConstantTimeCompare(want[:], have[:]) != 1 {
			c.Response().Header().Set("WWW-Authenticate", `Bearer realm="alfresco-ssh"`)
			return errToken
		}
		return next(c)
	}
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
