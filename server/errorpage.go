package server

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"html/template"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Errors for people: a browser that opens an unknown link, a used one or
// the bare address gets a small page styled like the terminal (no
// scripts), with the status, the reason and what to do next. API clients
// keep the JSON bodies of the protocol.

// errorPageCSS styles the page like the terminal: white on black, a
// monospace font, the red of the closing message.
const errorPageCSS = `html{background:#000;color:#fff;font:15px/1.5 ui-monospace,"DejaVu Sans Mono",Menlo,Consolas,monospace}
body{margin:0;padding:4px 6px}
main{max-width:72ch}
h1{font-size:inherit;font-weight:normal;color:#f14c4c;margin:0}
p{margin:0}
a{color:#3b8eea}`

var (
	errorPageTemplate = template.Must(template.New("error").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{{.Title}}</title>
<style>` + errorPageCSS + `</style>
</head>
<body>
<main>
<h1>{{.Heading}}</h1>
{{range .Lines}}<p>{{.}}</p>
{{end}}{{with .Docs}}<p><a href="{{.}}">{{.}}</a></p>
{{end}}</main>
</body>
</html>
`))
	errorPageStyleHash = func() string {
		sum := sha256.Sum256([]byte(errorPageCSS))
		return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
	}()
)

// errorPage is what a browser shows for an error.
type errorPage struct {
	Title, Heading string
	Lines          []string
	Docs           string // a link to the documentation, if configured
}

// unknownLink is the error of a page request whose credentials are
// unknown, used or expired (id "" for the bare address).
type unknownLink struct {
	id  string
	err *requestError
}

func newUnknownLink(id string) *unknownLink {
	return &unknownLink{id, &requestError{http.StatusNotFound, "Could not find stored credentials with ID " + truncate(id, 64)}}
}

func (e *unknownLink) Error() string { return e.err.Error() }
func (e *unknownLink) Unwrap() error { return e.err }

// wantsHTML reports whether a request prefers an HTML page to JSON: its
// Accept names text/html (as a browser's navigation does) with a higher
// weight than application/json. "*/*" alone is an API client's.
func wantsHTML(r *http.Request) bool {
	html, json := -1.0, -1.0
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		q := 1.0
		if s, ok := params["q"]; ok {
			if q, err = strconv.ParseFloat(s, 64); err != nil {
				continue
			}
		}
		switch mt {
		case "text/html", "application/xhtml+xml":
			html = max(html, q)
		case "application/json":
			json = max(json, q)
		case "*/*", "application/*":
			if json < 0 {
				json = q
			}
		}
	}
	return html > 0 && html > json
}

// errorPageFor is the page for an error with the status and message the
// API would answer.
func (s *Server) errorPageFor(err error, status int, msg string) errorPage {
	p := errorPage{Heading: strconv.Itoa(status) + " " + http.StatusText(status)}
	p.Title = p.Heading + " · alfresco-ssh"
	var link *unknownLink
	switch {
	case errors.As(err, &link) && link.id == "":
		p.Title, p.Heading = "alfresco-ssh", "alfresco-ssh: a web SSH gateway"
		p.Lines = []string{
			"This address shows a terminal when it is opened with a link that an application created for it (/?connection=<id>); there is nothing to see here without one.",
		}
		p.Docs = s.cfg.DocsURL
		return p
	case errors.As(err, &link):
		p.Lines = []string{
			"This terminal link is unknown, already used or expired: a link opens one terminal, and expires after " + humanDuration(s.cfg.CredentialsTTL) + " if it is not used.",
			"Ask the application that opened this terminal for a new link.",
		}
		return p
	}
	p.Lines = []string{msg}
	switch {
	case status == http.StatusMisdirectedRequest:
		p.Lines = append(p.Lines, "Open the gateway with the address its operator gave you.")
	case status == http.StatusTooManyRequests:
		p.Lines = append(p.Lines, "Wait a moment, then try again.")
	case status >= 500:
		p.Lines = append(p.Lines, "Try again in a moment; if it keeps happening, tell the gateway's operator.")
	}
	return p
}

// writeErrorPage answers with the HTML page.
func (s *Server) writeErrorPage(w http.ResponseWriter, status int, p errorPage) {
	var b bytes.Buffer
	if err := errorPageTemplate.Execute(&b, p); err != nil {
		s.log.Error("render error page", "err", err)
		http.Error(w, http.StatusText(status), status)
		return
	}
	csp := "default-src 'none'; style-src " + errorPageStyleHash + "; base-uri 'none'; form-action 'none'"
	if len(s.cfg.FrameAncestors) > 0 {
		csp += "; frame-ancestors " + strings.Join(s.cfg.FrameAncestors, " ")
	}
	h := w.Header()
	h.Set("Content-Security-Policy", csp)
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(b.Bytes())
}

// humanDuration writes d as a person would: "2 minutes", "90 seconds".
func humanDuration(d time.Duration) string {
	unit := func(n int64, name string) string {
		if n == 1 {
			return "1 " + name
		}
		return strconv.FormatInt(n, 10) + " " + name + "s"
	}
	switch {
	case d >= time.Hour && d%time.Hour == 0:
		return unit(int64(d/time.Hour), "hour")
	case d >= time.Minute && d%time.Minute == 0:
		return unit(int64(d/time.Minute), "minute")
	}
	return unit(int64(d.Round(time.Second)/time.Second), "second")
}
