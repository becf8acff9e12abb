package server

import (
	"testing"

	"github.com/alfresco-ssh/alfresco-ssh/sshbridge"
)

func TestDecodeStart(t *testing.T) {
	ack := func(...any) {}
	tests := []struct {
		name    string
		args    []any
		want    string
		wantErr bool
	}{
		{"gen2", []any{map[string]any{"credentials_uuid": "abc"}}, "abc", false},
		{"gen1", []any{map[string]any{"create_session_id": "abc"}}, "abc", false},
		{"with ack", []any{map[string]any{"credentials_uuid": "abc"}, ack}, "abc", false},
		{"no args", nil, "", true},
		{"string arg", []any{"abc"}, "", true},
		{"number id", []any{map[string]any{"credentials_uuid": 1.0}}, "", true},
		{"empty id", []any{map[string]any{"credentials_uuid": ""}}, "", true},
		{"long id", []any{map[string]any{"credentials_uuid": string(make([]byte, 100))}}, "", true},
		{"missing key", []any{map[string]any{"id": "abc"}}, "", true},
		{"nil", []any{nil}, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeStart(tt.args)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("got %q, %v; want %q, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestDecodeInput(t *testing.T) {
	tests := []struct {
		name    string
		args    []any
		want    string
		wantErr bool
	}{
		{"key", []any{map[string]any{"input": "a"}}, "a", false},
		{"empty", []any{map[string]any{"input": ""}}, "", false},
		{"number", []any{map[string]any{"input": 1.0}}, "", true},
		{"missing", []any{map[string]any{}}, "", true},
		{"bare string", []any{"a"}, "", true},
		{"binary", []any{[]byte("a")}, "", true},
		{"none", nil, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeInput(tt.args)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("got %q, %v; want %q, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestDecodeResize(t *testing.T) {
	tests := []struct {
		name    string
		args    []any
		want    sshbridge.WindowSize
		wantErr bool
	}{
		{"ints", []any{map[string]any{"cols": 120.0, "rows": 40.0}}, sshbridge.WindowSize{Rows: 40, Cols: 120}, false},
		{"strings", []any{map[string]any{"cols": "120", "rows": "40"}}, sshbridge.WindowSize{Rows: 40, Cols: 120}, false},
		{"max", []any{map[string]any{"cols": 2000.0, "rows": 1000.0}}, sshbridge.WindowSize{Rows: 1000, Cols: 2000}, false},
		{"zero", []any{map[string]any{"cols": 0.0, "rows": 40.0}}, sshbridge.WindowSize{}, true},
		{"negative", []any{map[string]any{"cols": 80.0, "rows": -1.0}}, sshbridge.WindowSize{}, true},
		{"huge", []any{map[string]any{"cols": 1e12, "rows": 40.0}}, sshbridge.WindowSize{}, true},
		{"fraction", []any{map[string]any{"cols": 80.5, "rows": 40.0}}, sshbridge.WindowSize{}, true},
		{"missing rows", []any{map[string]any{"cols": 80.0}}, sshbridge.WindowSize{}, true},
		{"bool", []any{map[string]any{"cols": true, "rows": 40.0}}, sshbridge.WindowSize{}, true},
		{"not object", []any{[]any{80.0, 24.0}}, sshbridge.WindowSize{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeResize(tt.args)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("got %v, %v; want %v, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}
