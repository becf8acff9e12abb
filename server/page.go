package server

import (
	"encoding/json"
	"html"
	"regexp"
	"strings"
)

// page is the terminal page, prepared once from a template written in the
// Flask server's Jinja style. Only what such pages use is understood:
// {{ credentials_uuid }}, {{ create_session_id }} (both hold the id), the
// filters e/escape/safe/tojson, and {{ url_for('static', filename='x') }};
// and for our own page {{ page_config }} (the page's settings, see
// pageconfig.go). Any other expression renders as the empty string, as an
// undefined Jinja variable does.
type page struct {
	parts  []pagePart
	config string // what {{ page_config }} renders, already HTML-escaped
}

// pagePart is literal text, the id with its filter when isID is set, or
// the page configuration when isConfig is set.
type pagePart struct {
	text     string
	isID     bool
	isConfig bool
	filter   string
}

var (
	jinjaExpr = regexp.MustCompile(`\{\{-?\s*(.*?)\s*-?\}\}`)
	urlFor    = regexp.MustCompile(`^url_for\(\s*['"]static['"]\s*,\s*filename\s*=\s*['"]([^'"]*)['"]\s*\)$`)
)

// parsePage prepares a template. It returns the expressions it could not
// render, so that the caller can warn about them.
func parsePage(tmpl string) (page, []string) {
	var p page
	var unknown []string
	last := 0
	for _, m := range jinjaExpr.FindAllStringSubmatchIndex(tmpl, -1) {
		p.literal(tmpl[last:m[0]])
		last = m[1]
		expr := tmpl[m[2]:m[3]]
		name, filter, _ := strings.Cut(expr, "|")
		name, filter = strings.TrimSpace(name), strings.TrimSpace(filter)
		switch {
		case name == "credentials_uuid" || name == "create_session_id":
			p.parts = append(p.parts, pagePart{isID: true, filter: filter})
		case name == "page_config":
			p.parts = append(p.parts, pagePart{isConfig: true})
		case urlFor.MatchString(name):
			p.literal(html.EscapeString("/static/" + strings.TrimPrefix(urlFor.FindStringSubmatch(name)[1], "/")))
		default:
			unknown = append(unknown, tmpl[m[0]:m[1]])
		}
	}
	p.literal(tmpl[last:])
	return p, unknown
}

func (p *page) literal(s string) {
	if s != "" {
		p.parts = append(p.parts, pagePart{text: s})
	}
}

// render returns the page for the credentials id.
func (p page) render(id string) []byte {
	var b strings.Builder
	for _, part := range p.parts {
		if part.isConfig {
			b.WriteString(p.config)
			continue
		}
		if !part.isID {
			b.WriteString(part.text)
			continue
		}
		switch part.filter {
		case "tojson":
			j, _ := json.Marshal(id) // escapes <, > and & as Jinja's tojson does
			b.Write(j)
		case "safe":
			b.WriteString(id)
		default:
			b.WriteString(html.EscapeString(id))
		}
	}
	return []byte(b.String())
}
