package server

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/zishang520/socket.io/servers/engine/v3/transports"
	"github.com/zishang520/socket.io/v3/pkg/types"

	"github.com/alfresco-ssh/alfresco-ssh/sshbridge"
)

// Operations: the credential store the server uses, health endpoints,
// request counting and the base path.

// CredentialStore keeps credentials between the create call and the
// terminal that uses them (package credstore: memory or Redis). Errors
// that wrap credstore.ErrUnavailable mean the store cannot be reached.
type CredentialStore interface {
	Put(ctx context.Context, t sshbridge.Target) (string, error)
	// Take returns the credentials and removes them: of several callers
	// racing for one id, exactly one succeeds.
	Take(ctx context.Context, id string) (sshbridge.Target, error)
	Has(ctx context.Context, id string) (bool, error)
	// Ping reports whether new credentials can be stored.
	Ping(ctx context.Context) error
	Close() error
}

// RequestCounter counts HTTP requests by route name and status (package
// metrics). The route is one of routeNames' values or "other".
type RequestCounter interface {
	Request(route string, code int)
}

// readyTimeout bounds the store check of /readyz.
const readyTimeout = time.Second

var errStoreDown = &requestError{http.StatusServiceUnavailable, "Credential store unavailable, try again later"}

// livez is GET /livez: the process serves HTTP.
func livez(c echo.Context) error { return c.String(http.StatusOK, "ok\n") }

// readyz is GET /readyz: 200 while the server takes new sessions, 503
// while it drains or cannot reach its credential store.
func (s *Server) readyz(c echo.Context) error {
	if s.draining.Load() {
		return c.String(http.StatusServiceUnavailable, "draining\n")
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), readyTimeout)
	defer cancel()
	if err := s.store.Ping(ctx); err != nil {
		s.log.Warn("not ready", "err", err)
		return c.String(http.StatusServiceUnavailable, "credential store unreachable\n")
	}
	return c.String(http.StatusOK, "ready\n")
}

// routeNames maps Echo's route patterns, below the base path, to the
// fixed names metrics count them by.
var routeNames = map[string]string{
	"/create-credentials": "create_credentials",
	"/create-session":     "create_session",
	"/":                   "page",
	"/:id":                "page_gen1",
	"/static/*":           "static",
	"/socket.io/*":        "socket_io",
	"/livez":              "livez",
	"/readyz":             "readyz",
	"/healthz":            "healthz",
}

// route is the pattern of the request's route below the base path ("" for
// no route).
func (s *Server) route(c echo.Context) string {
	return strings.TrimPrefix(c.Path(), s.cfg.BasePath)
}

// countRequests counts every request by route name and final status.
func (s *Server) countRequests(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if err := next(c); err != nil {
			c.Error(err) // writes the error reply, so its status is known
		}
		name, ok := routeNames[s.route(c)]
		switch {
		case strings.HasPrefix(s.route(c), "/admin/"):
			name = "admin"
		case !ok:
			name = "other"
		}
		s.cfg.Requests.Request(name, c.Response().Status)
		return nil
	}
}

// transports are the Socket.IO transports of cfg.Transports; polling
// with serialized writes (see serialPolling).
func (s *Server) transports() *types.Set[transports.TransportCtor] {
	set := types.NewSet[transports.TransportCtor]()
	for _, name := range s.cfg.Transports {
		switch name {
		case "polling":
			set.Add(&serialPollingBuilder{})
		case "websocket":
			set.Add(&heldWebsocketBuilder{})
		}
	}
	return set
}

// redirectToBase sends GET /prefix to /prefix/, keeping the query.
func (s *Server) redirectToBase(c echo.Context) error {
	u := *c.Request().URL
	u.Path += "/"
	return c.Redirect(http.StatusMovedPermanently, u.RequestURI())
}

// Drain turns /readyz to 503, so that balancers send no new sessions
// here; the caller then drains the terminals (Terminals().Drain).
func (s *Server) Drain() { s.draining.Store(true) }
