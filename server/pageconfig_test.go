package server

import (
	"bytes"
	"encoding/json"
	"html"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"regexp"
	"testing"
	"testing/fstest"
)

// TestPageConfig renders {{ page_config }} into the data-config attribute
// as escaped JSON the page can parse back, without a template warning.
func TestPageConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want map[string]any
	}{
		{"defaults", Config{}, map[string]any{}},
		{"embed origins", Config{EmbedOrigins: []string{"https://lab.example.com", "http://localhost:8080"}},
			map[string]any{"embedOrigins": []any{"https://lab.example.com", "http://localhost:8080"}}},
		{"any origin", Config{EmbedOrigins: []string{"*"}}, map[string]any{"embedOrigins": []any{"*"}}},
		{"escaped", Config{EmbedOrigins: []string{`"><script>&'`}}, map[string]any{"embedOrigins": []any{`"><script>&'`}}},
	}
	attr := regexp.MustCompile(`^<body data-id="([^"]*)" data-config="([^"<>]*)">$`)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			tt.cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			tt.cfg.Assets = fstest.MapFS{"templates/index.html": {
				Data: []byte(`<body data-id="{{ credentials_uuid }}" data-config="{{ page_config }}">`)}}
			s := newTestServer(t, tt.cfg)
			_, m, _ := do(t, s, jsonRequest(`{"hostname":"h","username":"u","password":"p"}`))
			id := m["connection_uuid"].(string)
			_, _, body := do(t, s, httptest.NewRequest(http.MethodGet, "/?connection="+id, nil))
			sub := attr.FindStringSubmatch(body)
			if sub == nil || sub[1] != id {
				t.Fatalf("got page %q, want the id and a data-config attribute", body)
			}
			var got map[string]any
			if err := json.Unmarshal([]byte(html.UnescapeString(sub[2])), &got); err != nil {
				t.Fatalf("data-config %q: %v", sub[2], err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got config %v, want %v", got, tt.want)
			}
			if bytes.Contains(logs.Bytes(), []byte("render empty")) {
				t.Errorf("got logs %q, want no template warning", logs.String())
			}
		})
	}
}

// TestOwnTemplate: every expression of the stock page is one the server
// renders.
func TestOwnTemplate(t *testing.T) {
	b, err := os.ReadFile("../templates/index.html")
	if err != nil {
		t.Fatal(err)
	}
	if _, unknown := parsePage(string(b)); len(unknown) > 0 {
		t.Errorf("templates/index.html: got expressions that render empty: %q", unknown)
	}
	if !bytes.Contains(b, []byte(`data-config="{{ page_config }}"`)) {
		t.Error(`templates/index.html has no data-config="{{ page_config }}"`)
	}
}
