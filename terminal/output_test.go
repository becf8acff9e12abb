package terminal

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/alfresco-ssh/alfresco-ssh/internal/lightssh"
)

// browserText is what the browser reads from JSON string content b.
func browserText(t testing.TB, b []byte) string {
	t.Helper()
	var s string
	if err := json.Unmarshal(append(append([]byte{'"'}, b...), '"'), &s); err != nil {
		t.Fatalf("%q is not JSON string content: %v", b, err)
	}
	if !json.Valid(append(append([]byte{'"'}, b...), '"')) || !utf8.Valid(b) {
		t.Fatalf("%q is not valid UTF-8 JSON", b)
	}
	return s
}

func TestUTF8StreamSplits(t *testing.T) {
	text := "héllo 世界 🙂 ┌─┐ done"
	raw := []byte(text)
	// Every split point of the text, including inside multi-byte runes.
	for i := 0; i <= len(raw); i++ {
		var d utf8Stream
		got := browserText(t, d.flush(d.appendJSON(d.appendJSON(nil, raw[:i]), raw[i:])))
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
		got.WriteString(browserText(t, d.appendJSON(nil, raw[:n])))
		raw = raw[n:]
	}
	got.WriteString(browserText(t, d.flush(nil)))
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
		{"escapes", []string{"a\"b\\c\x1b[0m\r\n\t\x00\x7f"}, "a\"b\\c\x1b[0m\r\n\t\x00\x7f"},
		{"html stays", []string{"<a href='x'>&</a>"}, "<a href='x'>&</a>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var d utf8Stream
			var b []byte
			for _, c := range tt.chunks {
				b = d.appendJSON(b, []byte(c))
			}
			got := browserText(t, d.flush(b))
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func BenchmarkOutputPacket(b *testing.B) {
	chunk := []byte(strings.Repeat("ascii text, \x1b[1mescapes\x1b[0m and some ünïcödé 世界\r\n", 1000))
	m := NewManager(Config{OutputHead: `2/ssh,["ssh-output",`, OutputTail: "]"})
	var d utf8Stream
	b.SetBytes(int64(len(chunk)))
	for b.Loop() {
		m.outputPacket(d.appendJSON(m.outputHead(len(chunk)), chunk[:len(chunk)-1]))
	}
}

// BenchmarkOutputText encodes the text the bench prints: lines of
// printable ASCII with one character in seven multi-byte.
func BenchmarkOutputText(b *testing.B) {
	chunk := bytes.Repeat(lightssh.Text(), 4)
	m := NewManager(Config{OutputHead: `2/ssh,["ssh-output",`, OutputTail: "]"})
	var d utf8Stream
	b.SetBytes(int64(len(chunk)))
	for b.Loop() {
		m.outputPacket(d.appendJSON(m.outputHead(len(chunk)), chunk))
	}
}

// TestPacketBufferRoom checks that a packet buffer always has the room
// asked for, whatever sizes were recycled before.
func TestPacketBufferRoom(t *testing.T) {
	for _, c := range []int{0, 100, 1023, 1024, 1025, 1500, 4096, 70000, 300 << 10, 512 << 10, 600 << 10} {
		Recycle(make([]byte, 0, c))
	}
	for _, n := range []int{1, 100, 1023, 1024, 1025, 2047, 2048, 2049, 65536, 300 << 10, 512 << 10, 512<<10 + 1, 1 << 20} {
		for range 3 {
			b := packetBuffer(n)
			if len(b) != 0 || cap(b) < n {
				t.Fatalf("packetBuffer(%d): len %d, cap %d; want len 0, cap >= %d", n, len(b), cap(b), n)
			}
			Recycle(b)
		}
	}
}

// TestKeptPacketsAreNotRecycled: a packet the replay keeps is never handed
// out again, whoever recycles it.
func TestKeptPacketsAreNotRecycled(t *testing.T) {
	for _, n := range []int{1000, 1023, 2047, 4096} {
		kept := keep(append(packetBuffer(n), make([]byte, n)...))
		for range 20 { // sync.Pool may drop a Put; try often
			Recycle(kept)
			if b := packetBuffer(n)[:1]; &b[0] == &kept[0] {
				t.Fatalf("a kept packet of %d bytes came back from the pool", n)
			}
		}
	}
}
