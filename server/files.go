package server

import (
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"
	"github.com/pkg/sftp"

	"github.com/alfresco-ssh/alfresco-ssh/files"
	"github.com/alfresco-ssh/alfresco-ssh/terminal"
)

// File transfers (Config.Files): the files token in connection-ready and
// the /files/ routes; the files package does the transfers.

// fileTransfers is what the server keeps for file transfers.
type fileTransfers struct {
	handler *files.Handler
}

func (s *Server) newFileTransfers() *fileTransfers {
	if !s.cfg.Files {
		return nil
	}
	ft := &fileTransfers{}
	ft.handler = files.New(files.Config{
		Sessions:  filesSessions{s.terms},
		MaxUpload: s.cfg.FilesMaxUpload,
		Logger:    s.log,
		Audit:     s.cfg.FilesAudit,
	})
	return ft
}

// routeFiles adds the /files/ routes when file transfers are on. Origins
// are checked as for Socket.IO; the bearer token is the files package's.
// When they are off, every method gets a 404 there (not the 405 of an
// unknown path's POST), as if the endpoints had never existed.
func (s *Server) routeFiles(e *echo.Group) {
	if s.files == nil {
		e.Any("/files/*", func(echo.Context) error { return echo.ErrNotFound })
		return
	}
	h := s.files.handler
	// Pages of --allowed-origins may call them with a token, and read
	// the download headers.
	cors := s.corsFor(corsPolicy{
		methods: "GET, HEAD, POST",
		headers: "Authorization, Content-Type, Range, If-Range",
		expose:  "Content-Disposition, Content-Range, Accept-Ranges, Last-Modified",
	})
	mw := []echo.MiddlewareFunc{cors, s.checkOrigin}
	list := echo.WrapHandler(http.HandlerFunc(h.List))
	download := echo.WrapHandler(http.HandlerFunc(h.Download))
	e.GET("/files/list", list, mw...)
	e.GET("/files/download", download, mw...)
	e.HEAD("/files/download", download, mw...)
	e.POST("/files/upload", echo.WrapHandler(http.HandlerFunc(h.Upload)), mw...)
	for _, p := range []string{"/files/list", "/files/download", "/files/upload"} {
		e.OPTIONS(p, func(c echo.Context) error { return echo.ErrMethodNotAllowed }, mw...)
	}
}

// filesSessions finds a terminal by its files token (files.Sessions).
type filesSessions struct{ m *terminal.Manager }

func (f filesSessions) FilesSession(token string) (files.Session, bool) {
	t, ok := f.m.FilesTerminal(token)
	if !ok {
		return nil, false
	}
	return filesSession{t}, true
}

// filesSession is a running terminal as the files package sees it.
type filesSession struct{ t *terminal.Terminal }

func (f filesSession) SFTP() (*sftp.Client, error) {
	sess := f.t.Session()
	if sess == nil {
		return nil, errors.New("the terminal has no SSH session")
	}
	return sess.SFTP()
}

// Touch counts a transfer as activity for the idle timeout.
func (f filesSession) Touch() { f.t.Touch() }

func (f filesSession) ID() string { return f.t.ID() }
