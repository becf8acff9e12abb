package files

import (
	"io/fs"
	"testing"
)

func TestModeString(t *testing.T) {
	tests := []struct {
		mode fs.FileMode
		want string
	}{
		{0o644, "-rw-r--r--"},
		{fs.ModeDir | 0o755, "drwxr-xr-x"},
		{fs.ModeSymlink | 0o777, "lrwxrwxrwx"},
		{fs.ModeSetuid | 0o755, "-rwsr-xr-x"},
		{fs.ModeSetuid | 0o644, "-rwSr--r--"},
		{fs.ModeSetgid | 0o755, "-rwxr-sr-x"},
		{fs.ModeDir | fs.ModeSticky | 0o777, "drwxrwxrwt"},
		{fs.ModeDir | fs.ModeSticky | 0o770, "drwxrwx--T"},
		{fs.ModeDevice | fs.ModeCharDevice | 0o666, "crw-rw-rw-"},
		{fs.ModeDevice | 0o660, "brw-rw----"},
		{fs.ModeNamedPipe | 0o600, "prw-------"},
		{fs.ModeSocket | 0o755, "srwxr-xr-x"},
	}
	for _, tt := range tests {
		if got := modeString(tt.mode); got != tt.want {
			t.Errorf("modeString(%v): got %q, want %q", tt.mode, got, tt.want)
		}
	}
}

func TestAttachment(t *testing.T) {
	tests := []struct{ name, want string }{
		{"plain.txt", `attachment; filename="plain.txt"`},
		{"with space.txt", `attachment; filename="with space.txt"`},
		{`a"b\c.txt`, `attachment; filename="a_b_c.txt"; filename*=UTF-8''a%22b%5Cc.txt`},
		{"naïve.txt", `attachment; filename="na_ve.txt"; filename*=UTF-8''na%C3%AFve.txt`},
		{"tab\there", `attachment; filename="tab_here"; filename*=UTF-8''tab%09here`},
		{"bad\xffbyte", `attachment; filename="bad_byte"; filename*=UTF-8''bad%EF%BF%BDbyte`},
	}
	for _, tt := range tests {
		if got := attachment(tt.name); got != tt.want {
			t.Errorf("attachment(%q): got %s, want %s", tt.name, got, tt.want)
		}
	}
}

func TestFormName(t *testing.T) {
	tests := []struct{ sent, want string }{
		{"plain.txt", "plain.txt"},
		{"%22quoted%22 name.txt", `"quoted" name.txt`},
		{"two%0Alines%0d.txt", "two\nlines\r.txt"},
		{"100%.txt", "100%.txt"},
		{"naïve.txt", "naïve.txt"},
	}
	for _, tt := range tests {
		if got := formName(tt.sent); got != tt.want {
			t.Errorf("formName(%q): got %q, want %q", tt.sent, got, tt.want)
		}
	}
}
