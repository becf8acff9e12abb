package terminal

import (
	"testing"
	"unicode/utf8"
)

// FuzzUTF8Stream checks that output split anywhere is valid UTF-8 and,
// when the input is valid, arrives unchanged.
func FuzzUTF8Stream(f *testing.F) {
	f.Add([]byte("héllo 世界 🙂"), uint(3))
	f.Add([]byte("\xff\xfe\xe4\xb8"), uint(1))
	f.Fuzz(func(t *testing.T, data []byte, cut uint) {
		k := int(cut % uint(len(data)+1))
		var d utf8Stream
		got := browserText(t, d.flush(d.appendJSON(d.appendJSON(nil, data[:k]), data[k:])))
		if utf8.Valid(data) && got != string(data) {
			t.Fatalf("got %q, want %q", got, data)
		}
	})
}
