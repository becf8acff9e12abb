package terminal

import (
	"context"
	"errors"
	"io"
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

// pump sends what r yields as ssh-output until r ends, then reports to
// the owner: r's error, nil at its end. The read buffer grows while the
// remote floods and shrinks back when it idles, so an idle session holds
// little memory; for the same reason pump's own frame is small (see
// pumpEnded), which keeps an idle pump within Go's smallest stack.
func (t *Terminal) pump(ctx context.Context, r io.Reader, stdout bool) {
	t.pumpEnded(stdout, t.copyOutput(ctx, r))
}

// pumpEnded reports the end of a pump to the owner. It is not inlined:
// its event and select would otherwise enlarge pump's frame, which every
// idle terminal holds twice while its pumps wait for output.
//
//go:noinline
func (t *Terminal) pumpEnded(stdout bool, err error) {
	t.post(event{kind: evPumped, stdout: stdout, err: err})
}

// copyOutput is pump's loop.
func (t *Terminal) copyOutput(ctx context.Context, r io.Reader) error {
	const minBuf, maxBuf = 512, 256 << 10
	var text utf8Stream
	buf := make([]byte, minBuf)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			t.Touch()
			t.bytesOut.Add(uint64(n))
			t.m.output.Add(uint64(n))
			if msg, ok := t.m.outputPacket(text.appendJSON(t.m.outputHead(n), buf[:n])); ok {
				if err := t.sendOutput(ctx, msg); err != nil {
					return err
				}
			}
		}
		if err != nil {
			if msg, ok := t.m.outputPacket(text.flush(t.m.outputHead(0))); ok {
				t.sendOutput(ctx, msg)
			}
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		switch {
		case n == len(buf) && len(buf) < maxBuf:
			buf = make([]byte, 2*len(buf))
		case n < minBuf/2 && len(buf) > minBuf:
			buf = make([]byte, minBuf)
		}
	}
}

// sendOutput sends one ssh-output packet once the previous one has been
// written to the client's transport.
func (t *Terminal) sendOutput(ctx context.Context, packet []byte) error {
	if t.rs != nil {
		return t.sendResumable(ctx, packet)
	}
	select {
	case t.gate <- struct{}{}:
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	t.client.Output(packet, t.written)
	return nil
}

// releaseGate lets the next output packet go.
func (t *Terminal) releaseGate() {
	select {
	case <-t.gate:
	default:
	}
}

// outputHead starts a packet with room for about n bytes of output.
func (m *Manager) outputHead(n int) []byte {
	b := make([]byte, 0, len(m.head)+n+n/8+len(m.tail)+32)
	return append(b, m.head...)
}

// outputPacket ends a packet; ok is false when it holds no output.
func (m *Manager) outputPacket(b []byte) (msg []byte, ok bool) {
	if len(b) == len(m.head) {
		return nil, false
	}
	return append(b, m.tail...), true
}

// packet is a whole ssh-output packet of text, with more fields (JSON,
// starting with a comma) after the output.
func (m *Manager) packet(text, fields string) []byte {
	var d utf8Stream
	b := d.flush(d.appendJSON(m.outputHead(len(text)), []byte(text)))
	b = append(b, '"')
	b = append(b, fields...)
	b = append(b, '}')
	return append(b, m.cfg.OutputTail...)
}
