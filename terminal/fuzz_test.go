package terminal

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzUTF8Stream checks that output split anywhere is valid UTF-8, reads
// as the same output unsplit does (invalid bytes included), and, when the
// input is valid, arrives unchanged.
func FuzzUTF8Stream(f *testing.F) {
	f.Add([]byte("héllo 世界 🙂"), uint(3))
	f.Add([]byte("\xff\xfe\xe4\xb8"), uint(1))
	f.Fuzz(func(t *testing.T, data []byte, cut uint) {
		k := int(cut % uint(len(data)+1))
		var d utf8Stream
		got := browserText(t, d.flush(d.appendJSON(d.appendJSON(nil, data[:k]), data[k:])))
		var whole utf8Stream
		if want := browserText(t, whole.flush(whole.appendJSON(nil, data))); got != want {
			t.Fatalf("split at %d: got %q, want %q as unsplit", k, got, want)
		}
		if utf8.Valid(data) && got != string(data) {
			t.Fatalf("got %q, want %q", got, data)
		}
	})
}

// FuzzAppendEscaped checks the escaper against a plain one that decodes
// every non-ASCII character with utf8.DecodeRune.
func FuzzAppendEscaped(f *testing.F) {
	f.Add([]byte("héllo 世界 🙂 \"\\\x1b[0m\r\n"))
	f.Add([]byte("\xe0\x80\x80 \xed\xa0\x80 \xc0\xaf \xc2 \xef\xbf\xbf \xf4\x90\x80\x80"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if got, want := string(appendEscaped(nil, data)), plainEscaped(data); got != want {
			t.Fatalf("%q: got %q, want %q", data, got, want)
		}
	})
}

// plainEscaped is appendEscaped written the simplest way.
func plainEscaped(p []byte) string {
	var b strings.Builder
	for i := 0; i < len(p); {
		r, size := utf8.DecodeRune(p[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b.WriteString(`\ufffd`)
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.Write(p[i : i+size])
		}
		i += size
	}
	return b.String()
}
