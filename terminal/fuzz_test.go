package terminal

import (
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
