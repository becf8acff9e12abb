package server

import (
	"errors"
	"io/fs"
	"net/http"
	"strconv"
	"strings"
	"time"

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
			s.log.Error("panic in handler", "path", c.Path(), "err", err, "stack", string(stack))
			return err
		},
	}))

	e.Use(s.securityHeaders)
	create := []echo.MiddlewareFunc{s.cors, s.checkOrigin, s.requireToken, s.limitBody}
	e.POST("/create-credentials", s.createCredentials, create...)
	e.POST("/create-session", s.createSession, create...)
	e.OPTIONS("/create-credentials", postOnly, s.cors)
	e.OPTIONS("/create-session", postOnly, s.cors)
	// Without these, GET /create-session would be taken for a generation-1
	// page id.
	others := []string{http.MethodGet, http.MethodHead, http.MethodPut, http.MethodPatch, http.MethodDelete}
	e.Match(others, "/create-credentials", postOnly)
	e.Match(others, "/create-session", postOnly)
	e.GET("/", s.terminalPage)
	e.GET("/:id", s.terminalPageGen1)
	e.GET("/healthz", func(c echo.Context) error { return c.String(http.StatusOK, "ok\n") })
	e.GET("/static/*", echo.WrapHandler(http.StripPrefix("/static/", staticHandler(static))))
	e.Any("/socket.io/*", echo.WrapHandler(s.io.ServeHandler(nil)), s.checkOrigin)
	return e, nil
}

func postOnly(c echo.Context) error {
	c.Response().Header().Set("Allow", http.MethodPost)
	return echo.ErrMethodNotAllowed
}

func staticHandler(static fs.FS) http.Handler {
	files := http.FileServerFS(static)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/") || r.URL.Path == "" {
			http.NotFound(w, r) // no directory listings
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=3600")
		files.ServeHTTP(w, r)
	})
}

// handleError answers every error Echo or a handler returns with a JSON body.
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
		s.log.Error("request failed", "method", c.Request().Method, "path", c.Path(), "err", err)
	}
	var body any = apiError{Error: msg}
	if status == http.StatusUnauthorized {
		c.Response().Header().Set("WWW-Authenticate", `Bearer realm="alfresco-ssh"`)
	}
	if c.Path() == "/create-session" || c.Path() == "/:id" {
		body = map[string]string{"error": msg} // generation 1 shape
	}
	if c.Request().Method == http.MethodHead {
		c.NoContent(status)
		return
	}
	c.JSON(status, body)
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

// storeRequest parses and stores the credentials of a create request.
func (s *Server) storeRequest(c echo.Context) (string, error) {
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
	id, err := s.store.Put(target)
	clear(target.PrivateKey)
	if errors.Is(err, credstore.ErrStoreFull) {
		s.log.Warn("credential store full", "max", s.cfg.MaxCredentials)
		return "", &requestError{http.StatusServiceUnavailable, "Too many pending sessions, try again later"}
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
		"url":             s.baseURL(c.Request()) + "/?connection=" + id,
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
		"url":               s.baseURL(c.Request()) + "/" + id,
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
	if !s.store.Has(id) {
		return &requestError{http.StatusNotFound, "Could not find stored credentials with ID " + truncate(id, 64)}
	}
	h := c.Response().Header()
	h.Set("Cache-Control", "no-store")
	if csp := s.pageCSP(); csp != "" {
		h.Set("Content-Security-Policy", csp)
	}
	return c.HTMLBlob(http.StatusOK, s.page.render(id))
}

// baseURL is the scheme and host the client used. Forwarded headers count
// only from a trusted proxy.
func (s *Server) baseURL(r *http.Request) string {
	scheme, host := "http", r.Host
	if r.TLS != nil {
		scheme = "https"
	}
	if s.fromTrustedProxy(r) {
		if p := firstHeaderValue(r, "X-Forwarded-Proto"); p == "http" || p == "https" {
			scheme = p
		}
		if h := firstHeaderValue(r, "X-Forwarded-Host"); h != "" && validHost(strings.ReplaceAll(h, ":", "")) {
			host = h
		}
	}
	return scheme + "://" + host
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
