package server

import (
	"unicode/utf8"
)

// utf8Stream turns terminal output bytes into the JSON string content of
// ssh-output messages, in one pass: it checks UTF-8, escapes for JSON, and
// carries a multi-byte character split across two reads over to the next
// chunk instead of losing it. Only truly invalid bytes become U+FFFD.
type utf8Stream struct {
	carry []byte
}

// appendJSON appends p, escaped as JSON string content, to dst. An
// incomplete trailing sequence is kept for the next call.
func (d *utf8Stream) appendJSON(dst, p []byte) []byte {
	if len(d.carry) > 0 {
		p = append(d.carry, p...)
		d.carry = nil
	}
	if cut := incompleteTail(p); cut < len(p) {
		d.carry = append([]byte(nil), p[cut:]...)
		p = p[:cut]
	}
	const hex = "0123456789abcdef"
	start := 0
	for i := 0; i < len(p); {
		c := p[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRune(p[i:])
			if r != utf8.RuneError || size > 1 {
				i += size
				continue
			}
		}
		dst = append(dst, p[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			if c >= utf8.RuneSelf {
				dst = append(dst, `\ufffd`...) // an invalid byte
			} else {
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
		}
		i++
		start = i
	}
	return append(dst, p[start:]...)
}

// flush appends what is left at the end of the stream.
func (d *utf8Stream) flush(dst []byte) []byte {
	if len(d.carry) == 0 {
		return dst
	}
	d.carry = nil
	return append(dst, `\ufffd`...)
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
