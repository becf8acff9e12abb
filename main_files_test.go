package main

import (
	"io"
	"regexp"
	"strings"
	"testing"
)

func TestFilesFlags(t *testing.T) {
	tests := []struct {
		name      string
		args      []string
		env       map[string]string
		wantFiles bool
		wantMax   int64
		wantErr   string
	}{
		{"defaults", nil, nil, true, 0, ""},
		{"off", []string{"--files=false"}, nil, false, 0, ""},
		{"off by env", nil, map[string]string{"ALFRESCO_SSH_FILES": "false"}, false, 0, ""},
		{"max upload", []string{"--files-max-upload", "1048576"}, nil, true, 1 << 20, ""},
		{"negative max upload", []string{"--files-max-upload", "-1"}, nil, false, 0, "--files-max-upload"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			getenv := env(tt.env)
			o, err := parseFlags(tt.args, getenv, io.Discard)
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
			if cfg.Files != tt.wantFiles || cfg.FilesMaxUpload != tt.wantMax {
				t.Errorf("got Files %v, FilesMaxUpload %d; want %v, %d", cfg.Files, cfg.FilesMaxUpload, tt.wantFiles, tt.wantMax)
			}
		})
	}
}

// TestFilesAssetsOffline: the file panel loads nothing from elsewhere.
func TestFilesAssetsOffline(t *testing.T) {
	for _, name := range []string{"static/files.js", "static/files.css"} {
		b, err := assets.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if m := regexp.MustCompile(`https?://[^\s"')]+`).FindString(string(b)); m != "" {
			t.Errorf("%s loads %s, want only embedded assets", name, m)
		}
	}
}
