package server

import (
	"errors"
	"io/fs"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/alfresco-ssh/alfresco-ssh/credstore"
)

// apiError is the JSON error body of generation 2.
type apiError struct {
	Success bool   `json:"success"`
	Error   string `json:"error"`
}

func (s *Server) newEcho() (*echo.Echo, error) {
	static, err := fs.Sub(s.cfg.Assets, "static")
	if err != nil {
		return nil, err
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.handleError
	e.Use(middleware.RecoverWithConfig(middleware.RecoverConfig{
		DisablePrintStack: true,
		LogErrorFunc: func(c echo.Context, err error, stack []byte) error {
			return &panicError{err, stack} // handleError logs it
		},
	}))

	e.Use(s.securityHeaders, s.checkHost)
	if s.cfg.Requests != nil {
		e.Use(s.countRequests)
	}
	if s.cfg.BasePath != "" {
		e.GET(s.cfg.BasePath, s.redirectToBase)
	}
	g := e.Group(s.cfg.BasePath)
	create := []echo.MiddlewareFunc{s.cors, s.checkOrigin, s.requireToken, s.limitBody}
	g.POST("/create-credentials", s.createCredentials, create...)
	g.POST("/create-session", s.createSession, create...)
	g.OPTIONS("/create-credentials", postOnly, s.cors)
	g.OPTIONS("/create-session", postOnly, s.cors)
	// Without these, GET /create-session would be taken for a generation-1
	// page id.
	others := []string{http.MethodGet, http.MethodHead, http.MethodPut, http.MethodPatch, http.MethodDelete}
	g.Match(others, "/create-credentials", postOnly)
	g.Match(others, "/create-session", postOnly)
	get(g, "/", s.terminalPage)
	get(g, "/:id", s.terminalPageGen1)
	get(g, "/healthz", func(c echo.Context) error { return c.String(http.StatusOK, "ok\n") })
	get(g, "/livez", livez)
	get(g, "/readyz", s.readyz)
	get(g, "/static/*", serveStatic(static))
	g.Any("/socket.io/*", echo.WrapHandler(s.io.ServeHandler(nil)), s.checkOrigin)
	s.routeFiles(g)
	s.routeAdmin(g)
	return e, nil
}

// get adds a route for GET and HEAD: every page and file a browser can GET
// answers HEAD too.
func get(e *echo.Group, path string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) {
	e.Match([]string{http.MethodGet, http.MethodHead}, path, h, m...)
}

func postOnly(c echo.Context) error {
	c.Response().Header().Set("Allow", http.MethodPost)
	return echo.ErrMethodNotAllowed
}

// serveStatic serves the files of static under the route's wildcard. A
// name that is not a valid file name (an invalid escape or UTF-8, a dot
// segment, a directory) is a 404, like a missing file.
func serveStatic(static fs.FS) echo.HandlerFunc {
	return func(c echo.Context) error {
		name := c.Param("*")
		if c.Request().URL.RawPath != "" { // the router matched the escaped path
			var err error
			if name, err = url.PathUnescape(name); err != nil {
				return echo.ErrNotFound
			}
		}
		if !utf8.ValidString(name) || !fs.ValidPath(name) {
			return echo.ErrNotFound
		}
		if fi, err := fs.Stat(static, name); err != nil || fi.IsDir() {
			return echo.ErrNotFound
		}
		c.Response().Header().Set("Cache-Control", "public, max-age=3600")
		http.ServeFileFS(c.Response(), c.Request(), static, name)
		return nil
	}
}

// panicError is a handler's panic, recovered.
type panicError struct {
	err   error
	stack []byte
}

func (e *panicError) Error() string { return "panic: " + e.err.Error() }
func (e *panicError) Unwrap() error { return e.err }

// handleError answers every error Echo or a handler returns: with the JSON
// body of the protocol, or an HTML page for a browser (see wantsHTML). An
// unexpected failure is logged here, once.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	status, msg := http.StatusInternalServerError, "Internal server error"
	var he *echo.HTTPError
	var re *requestError
	switch {
	case errors.As(err, &re):
		status, msg = re.status, re.msg
	case errors.As(err, &he):
		status = he.Code
		if m, ok := he.Message.(string); ok && status < 500 {
			msg = m
		} else {
			msg = http.StatusText(status)
		}
	}
	if status == http.StatusInternalServerError {
		attrs := []any{"method", c.Request().Method, "path", c.Path(), "err", err}
		if pe := (*panicError)(nil); errors.As(err, &pe) {
			attrs = append(attrs, "stack", string(pe.stack))
		}
		s.log.Error("request failed", attrs...)
	}
	h := c.Response().Header()
	h.Add("Vary", "Accept")
	if status == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", `Bearer realm="alfresco-ssh"`)
	}
	switch { // for HEAD, net/http drops the body and keeps the headers
	case wantsHTML(c.Request()):
		s.writeErrorPage(c.Response(), status, s.errorPageFor(err, status, msg))
	case s.route(c) == "/create-session" || s.route(c) == "/:id":
		c.JSON(status, map[string]string{"error": msg}) // generation 1 shape
	default:
		c.JSON(status, apiError{Error: msg})
	}
}

// limitBody caps the request body; a larger body is a 413.
func (s *Server) limitBody(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if r.ContentLength > s.cfg.MaxBodyBytes {
			return errTooLarge
		}
		r.Body = http.MaxBytesReader(c.Response(), r.Body, s.cfg.MaxBodyBytes)
		return next(c)
	}
}

// errShuttingDown answers a create request during Shutdown.
var errShuttingDown = &requestError{http.StatusServiceUnavailable, "The gateway is shutting down, try again later"}

// storeRequest parses and stores the credentials of a create request.
func (s *Server) storeRequest(c echo.Context) (string, error) {
	if s.isClosing() {
		return "", errShuttingDown
	}
	client := s.clientIP(c.Request())
	if err := s.allowCreate(c.Request().Context(), c.Response(), client); err != nil {
		return "", err
	}
	target, err := parseCredentialRequest(c.Request())
	if err != nil {
		return "", err
	}
	if err := s.cfg.Targets.CheckLiteral(target.Host, target.Port); err != nil {
		s.log.Info("refused target", "host", target.Host, "port", target.Port, "client", client, "err", err)
		return "", &requestError{http.StatusForbidden, "Target not allowed by the gateway's policy"}
	}
	id, err := s.store.Put(c.Request().Context(), target)
	clear(target.PrivateKey)
	if errors.Is(err, credstore.ErrStoreFull) {
		s.log.Warn("credential store full", "max", s.cfg.MaxCredentials)
		return "", &requestError{http.StatusServiceUnavailable, "Too many pending sessions, try again later"}
	}
	if errors.Is(err, credstore.ErrUnavailable) {
		s.log.Warn("credentials not stored", "err", err)
		return "", errStoreDown
	}
	if errors.Is(err, credstore.ErrClosed) {
		return "", errShuttingDown
	}
	if err != nil {
		return "", err
	}
	s.log.Info("credentials stored", "id", shortID(id), "host", target.Host, "port", target.Port,
		"user", target.User, "auth", authKind(target.PrivateKey), "client", client)
	return id, nil
}

// createCredentials is POST /create-credentials (generation 2).
func (s *Server) createCredentials(c echo.Context) error {
	id, err := s.storeRequest(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{
		"success":         true,
		"connection_uuid": id,
		"url":             s.baseURL(c.Request()) + s.cfg.BasePath + "/?connection=" + id,
	})
}

// createSession is POST /create-session (generation 1): errors are 400
// with {"error": ...}, as that generation answered.
func (s *Server) createSession(c echo.Context) error {
	id, err := s.storeRequest(c)
	var re *requestError
	if errors.As(err, &re) && re.status == http.StatusUnsupportedMediaType {
		return &requestError{http.StatusBadRequest, re.msg}
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]string{
		"create_session_id": id,
		"url":               s.baseURL(c.Request()) + s.cfg.BasePath + "/" + id,
	})
}

// terminalPage is GET /?connection=<id> (generation 2).
func (s *Server) terminalPage(c echo.Context) error {
	return s.renderPage(c, c.QueryParam("connection"))
}

// terminalPageGen1 is GET /<id> (generation 1).
func (s *Server) terminalPageGen1(c echo.Context) error {
	return s.renderPage(c, c.Param("id"))
}

// renderPage shows the terminal page without consuming the credentials, so
// that a reload before the terminal starts still works.
func (s *Server) renderPage(c echo.Context, id string) error {
	ok, err := s.store.Has(c.Request().Context(), id)
	if errors.Is(err, credstore.ErrUnavailable) {
		s.log.Warn("page not served", "err", err)
		return errStoreDown
	}
	if err != nil {
		return err
	}
	if !ok && !s.terms.Resumable(id) { // a reload of a resumable session
		return newUnknownLink(id)
	}
	h := c.Response().Header()
	h.Set("Cache-Control", "no-store")
	if csp := s.pageCSP(); csp != "" {
		h.Set("Content-Security-Policy", csp)
	}
	return c.HTMLBlob(http.StatusOK, s.page.render(id))
}

// baseURL is the scheme and host the client used.
func (s *Server) baseURL(r *http.Request) string {
	return s.requestScheme(r) + "://" + s.requestHost(r)
}

// requestScheme is the scheme the client used: X-Forwarded-Proto counts
// from a trusted proxy.
func (s *Server) requestScheme(r *http.Request) string {
	if s.fromTrustedProxy(r) {
		if p := firstHeaderValue(r, "X-Forwarded-Proto"); p == "http" || p == "https" {
			return p
		}
	}
	if r.TLS != nil {
		return "https"
	}
	return "http"
}

// requestHost is the host (and port) the client asked for:
// X-Forwarded-Host counts from a trusted proxy.
func (s *Server) requestHost(r *http.Request) string {
	if s.fromTrustedProxy(r) {
		if h := firstHeaderValue(r, "X-Forwarded-Host"); h != "" && validHost(strings.ReplaceAll(h, ":", "")) {
			return h
		}
	}
	return r.Host
}

func firstHeaderValue(r *http.Request, name string) string {
	v, _, _ := strings.Cut(r.Header.Get(name), ",")
	return strings.TrimSpace(v)
}

// retryAfter renders a wait in whole seconds, at least 1.
func retryAfter(d time.Duration) string {
	return strconv.Itoa(max(1, int((d+time.Second-1)/time.Second)))
}

func authKind(key []byte) string {
	if len(key) > 0 {
		return "key"
	}
	return "password"
}

// shortID is the part of a credentials id that may appear in logs.
func shortID(id string) string { return truncate(id, 8) }

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
