package server

import (
	"encoding/json"
	"html"
	"slices"
)

// pageConfig is what the stock terminal page learns from the server: JSON
// in its body's data-config attribute, where the template says
// {{ page_config }}, so that terminal.js needs no extra request. Every field
// is optional; the page takes its default for an absent one. The contract
// is INTERFACES.md section 1 (fields other helpers add go here).
type pageConfig struct {
	// BasePath is --base-path ("" or "/prefix"): the page builds its
	// Socket.IO path and URLs from it.
	BasePath string `json:"basePath,omitempty"`
	// Transports are the Socket.IO transports the server accepts, in the
	// order the page tries them (--transports).
	Transports []string `json:"transports,omitempty"`
	// EmbedOrigins are the parent origins the page's embedding API
	// (window.postMessage) talks to; ["*"] is any, none turns it off.
	EmbedOrigins []string `json:"embedOrigins,omitempty"`
	// Docs is the address of the gateway's documentation (--docs-url).
	Docs string `json:"docs,omitempty"`
	// Files shows the file panel (Config.Files); FilesMaxUpload, in
	// bytes, lets it refuse a larger file before sending it.
	Files          bool  `json:"files,omitempty"`
	FilesMaxUpload int64 `json:"filesMaxUpload,omitempty"`
	// ResumeWindow is --resume-window in seconds, for the page's
	// "Reconnecting… N s left"; absent when resume is off.
	ResumeWindow float64 `json:"resumeWindow,omitempty"`
}

// pageConfigAttr is the page configuration from c, HTML-escaped for an
// attribute value.
func (c *Config) pageConfigAttr() string {
	pc := pageConfig{BasePath: c.BasePath, EmbedOrigins: c.EmbedOrigins, Docs: c.DocsURL,
		Files: c.Files, FilesMaxUpload: c.FilesMaxUpload, ResumeWindow: c.ResumeWindow.Seconds()}
	if !slices.Equal(c.Transports, defaultTransports) {
		pc.Transports = c.Transports
	}
	b, _ := json.Marshal(pc) // strings always marshal
	return html.EscapeString(string(b))
}
