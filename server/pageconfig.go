package server

import (
	"encoding/json"
	"html"
)

// pageConfig is what the stock terminal page learns from the server: JSON
// in its body's data-config attribute, where the template says
// {{ page_config }}, so that terminal.js needs no extra request. Every field
// is optional; the page takes its default for an absent one. The contract
// is INTERFACES.md section 1 (fields other helpers add go here).
type pageConfig struct {
	// EmbedOrigins are the parent origins the page's embedding API
	// (window.postMessage) talks to; ["*"] is any, none turns it off.
	EmbedOrigins []string `json:"embedOrigins,omitempty"`
}

// pageConfigAttr is the page configuration from c, HTML-escaped for an
// attribute value.
func (c *Config) pageConfigAttr() string {
	b, _ := json.Marshal(pageConfig{EmbedOrigins: c.EmbedOrigins}) // strings always marshal
	return html.EscapeString(string(b))
}
