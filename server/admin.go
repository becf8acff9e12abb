package server

import (
	"context"
	"net/http"
	"os"

	"github.com/labstack/echo/v4"

	"github.com/alfresco-ssh/alfresco-ssh/registry"
)

// Session admin for operators (Config.AdminToken): GET /admin/sessions
// lists the live sessions, DELETE /admin/sessions/{id} ends one.

// SessionRegistry lists the live sessions and ends one, wherever it runs
// (package registry: this node's, or every node's through Redis).
type SessionRegistry interface {
	List(ctx context.Context) ([]registry.Session, error)
	Kill(ctx context.Context, id string) (found bool, err error)
}

var (
	errAdminToken   = &requestError{http.StatusUnauthorized, "Missing or invalid admin token"}
	errNoSession    = &requestError{http.StatusNotFound, "No such session"}
	errRegistryDown = &requestError{http.StatusServiceUnavailable, "Session registry unavailable, try again later"}
)

// routeAdmin adds the admin routes when an admin token is set.
func (s *Server) routeAdmin(g *echo.Group) {
	if s.cfg.AdminToken == "" {
		return
	}
	get(g, "/admin/sessions", s.adminList, s.requireAdmin)
	g.DELETE("/admin/sessions/:id", s.adminKill, s.requireAdmin)
}

func (s *Server) requireAdmin(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if !bearerMatches(c.Request(), s.cfg.AdminToken) {
			c.Response().Header().Set("WWW-Authenticate", `Bearer realm="alfresco-ssh admin"`)
			return errAdminToken
		}
		return next(c)
	}
}

func (s *Server) adminList(c echo.Context) error {
	list, err := s.admin.List(c.Request().Context())
	if err != nil {
		s.log.Warn("admin: list sessions", "err", err)
		return errRegistryDown
	}
	return c.JSON(http.StatusOK, map[string]any{"success": true, "sessions": list})
}

func (s *Server) adminKill(c echo.Context) error {
	id := c.Param("id")
	found, err := s.admin.Kill(c.Request().Context(), id)
	switch {
	case err != nil:
		s.log.Warn("admin: end a session", "err", err)
		return errRegistryDown
	case !found:
		return errNoSession
	}
	s.log.Info("admin: session ended", "session", id, "client", s.clientIP(c.Request()))
	return c.JSON(http.StatusOK, map[string]any{"success": true})
}

// hostname names this node in the session list.
func hostname() string {
	name, err := os.Hostname()
	if err != nil {
		return "localhost"
	}
	return name
}
