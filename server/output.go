package server

import (
	"strings"
	"unicode/utf8"
)

// utf8Stream turns a byte stream into valid UTF-8 text chunks. A multi-byte
// character split across two reads is carried over to the next chunk
// instead of being lost; only truly invalid bytes become U+FFFD.
type utf8Stream struct {
	carry []byte
}

// decode returns the text of p, keeping an incomplete trailing sequence for
// the next call.
func (d *utf8Stream) decode(p []byte) string {
	if len(d.carry) > 0 {
		p = append(d.carry, p...)
		d.carry = nil
	}
	cut := incompleteTail(p)
	if cut < len(p) {
		d.carry = append([]byte(nil), p[cut:]...)
		p = p[:cut]
	}
	if utf8.Valid(p) {
		return string(p)
	}
	return strings.ToValidUTF8(string(p), "\uFFFD")
}

// flush returns what is left at the end of the stream.
func (d *utf8Stream) flush() string {
	if len(d.carry) == 0 {
		return ""
	}
	d.carry = nil
	return "\uFFFD"
}

// incompleteTail returns the index where an incomplete (but so far valid)
// multi-byte sequence at the end of p starts, or len(p).
func incompleteTail(p []byte) int {
	for i := len(p) - 1; i >= 0 && i >= len(p)-utf8.UTFMax+1; i-- {
		c := p[i]
		if c < utf8.RuneSelf {
			return len(p) // ASCII: nothing pending
		}
		if utf8.RuneStart(c) {
			if utf8.FullRune(p[i:]) {
				return len(p)
			}
			return i
		}
	}
	return len(p)
}
