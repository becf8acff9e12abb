package server

import (
	"strings"
	"testing"
)

func TestPageRender(t *testing.T) {
	const id = "0c2a6f0e-6f77-4b0c-9d0b-1f3c2a9f8e11"
	tests := []struct {
		name        string
		tmpl        string
		want        string
		wantUnknown int
	}{
		{"gen2", `<div id="{{ credentials_uuid }}">`, `<div id="` + id + `">`, 0},
		{"gen1", `var sid = "{{create_session_id}}";`, `var sid = "` + id + `";`, 0},
		{"both", `{{ credentials_uuid }}|{{ create_session_id }}`, id + "|" + id, 0},
		{"tojson", `const id = {{ credentials_uuid|tojson }};`, `const id = "` + id + `";`, 0},
		{"safe", `{{ credentials_uuid | safe }}`, id, 0},
		{"url_for", `<script src="{{ url_for('static', filename='js/xterm.js') }}">`, `<script src="/static/js/xterm.js">`, 0},
		{"unknown", `a{{ request.host }}b`, "ab", 1},
		{"no placeholders", `<p>plain</p>`, `<p>plain</p>`, 0},
		{"whitespace control", `{{- credentials_uuid -}}`, id, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, unknown := parsePage(tt.tmpl, "")
			if got := string(p.render(id)); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			if len(unknown) != tt.wantUnknown {
				t.Errorf("got unknown %q, want %d", unknown, tt.wantUnknown)
			}
		})
	}
}

func TestPageRenderEscapes(t *testing.T) {
	p, _ := parsePage(`<b data-id="{{ credentials_uuid }}">`, "")
	got := string(p.render(`"><script>`))
	if strings.Contains(got, "<script>") {
		t.Errorf("got %q, want the id HTML-escaped", got)
	}
}
