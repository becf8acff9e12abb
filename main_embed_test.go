package main

import (
	"io"
	"reflect"
	"strings"
	"testing"
)

func TestEmbedOrigins(t *testing.T) {
	tests := []struct {
		name    string
		flag    string
		env     string
		want    []string
		wantErr string
	}{
		{"off by default", "", "", nil, ""},
		{"list", " https://lab.example.com, http://localhost:8080/ ", "", []string{"https://lab.example.com", "http://localhost:8080"}, ""},
		{"as the browser writes it", "HTTPS://Lab.Example.com:443,http://a.example:80", "", []string{"https://lab.example.com", "http://a.example"}, ""},
		{"any", "*", "", []string{"*"}, ""},
		{"environment", "", "https://lab.example.com", []string{"https://lab.example.com"}, ""},
		{"path", "https://lab.example.com/app", "", nil, "--embed-origins"},
		{"no scheme", "lab.example.com", "", nil, "--embed-origins"},
		{"other scheme", "ftp://lab.example.com", "", nil, "--embed-origins"},
		{"query", "https://lab.example.com?x=1", "", nil, "--embed-origins"},
		{"user", "https://u@lab.example.com", "", nil, "--embed-origins"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var args []string
			if tt.flag != "" {
				args = []string{"--embed-origins", tt.flag}
			}
			getenv := env(map[string]string{"ALFRESCO_SSH_EMBED_ORIGINS": tt.env})
			o, err := parseFlags(args, getenv, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			cfg, _, err := o.config(getenv)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %v, want an error mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(cfg.EmbedOrigins, tt.want) {
				t.Errorf("got %q, want %q", cfg.EmbedOrigins, tt.want)
			}
		})
	}
}
