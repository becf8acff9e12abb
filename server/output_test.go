package server

import (
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestUTF8StreamSplits(t *testing.T) {
	text := "héllo 世界 🙂 ┌─┐ done"
	raw := []byte(text)
	// Every split point of the text, including inside multi-byte runes.
	for i := 0; i <= len(raw); i++ {
		var d utf8Stream
		got := d.decode(raw[:i]) + d.decode(raw[i:]) + d.flush()
		if got != text {
			t.Fatalf("split at %d: got %q, want %q", i, got, text)
		}
	}
}

func TestUTF8StreamRandomChunks(t *testing.T) {
	var b strings.Builder
	for i := range 20000 {
		b.WriteString([]string{"a", "é", "世", "🙂", "─", "\r\n"}[i%6])
	}
	text := b.String()
	raw := []byte(text)
	rng := rand.New(rand.NewPCG(1, 2))
	var d utf8Stream
	var got strings.Builder
	for len(raw) > 0 {
		n := min(len(raw), 1+rng.IntN(7))
		chunk := d.decode(raw[:n])
		if !utf8.ValidString(chunk) {
			t.Fatalf("chunk %q is not valid UTF-8", chunk)
		}
		got.WriteString(chunk)
		raw = raw[n:]
	}
	got.WriteString(d.flush())
	if got.String() != text {
		t.Errorf("got %d bytes, want the %d bytes sent, unchanged", got.Len(), len(text))
	}
}

func TestUTF8StreamInvalid(t *testing.T) {
	tests := []struct {
		name   string
		chunks []string
		want   string
	}{
		{"invalid byte", []string{"a\xffb"}, "a\uFFFDb"},
		{"truncated at end of stream", []string{"a\xe4\xb8"}, "a\uFFFD"},
		{"bad continuation", []string{"\xe4", "xy"}, "\uFFFDxy"},
		{"lone continuation", []string{"\x80abc"}, "\uFFFDabc"},
		{"ascii", []string{"abc", "def"}, "abcdef"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var d utf8Stream
			var got string
			for _, c := range tt.chunks {
				got += d.decode([]byte(c))
			}
			got += d.flush()
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func BenchmarkUTF8StreamDecode(b *testing.B) {
	chunk := []byte(strings.Repeat("ascii text and some ünïcödé 世界 ", 1000))
	var d utf8Stream
	b.SetBytes(int64(len(chunk)))
	for b.Loop() {
		d.decode(chunk[:len(chunk)-1])
	}
}
