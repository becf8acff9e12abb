package terminal

import (
	"context"
	"errors"
	"io"
	"math/bits"
	"sync"
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
		// The carried character ends with the continuation bytes that
		// start p: complete it with those alone, not with a copy of p.
		need := 2
		if d.carry[0] >= 0xf0 {
			need = 4
		} else if d.carry[0] >= 0xe0 {
			need = 3
		}
		j := 0
		for j < len(p) && len(d.carry)+j < need && p[j]&0xc0 == 0x80 {
			j++
		}
		char := append(d.carry, p[:j]...)
		d.carry, p = nil, p[j:]
		if len(p) == 0 && incompleteTail(char) == 0 {
			d.carry = char // still incomplete, and nothing follows yet
			return dst
		}
		dst = appendEscaped(dst, char)
	}
	if cut := incompleteTail(p); cut < len(p) {
		d.carry = append([]byte(nil), p[cut:]...)
		p = p[:cut]
	}
	return appendEscaped(dst, p)
}

// appendEscaped appends p, escaped as JSON string content, to dst; every
// byte of p that is not part of a valid character becomes U+FFFD. Two-
// and three-byte characters (most non-ASCII text) are checked here
// rather than by utf8.DecodeRune, whose call per character cost a
// quarter of the escaping of accented or CJK text.
func appendEscaped(dst, p []byte) []byte {
	const hex = "0123456789abcdef"
	start := 0
	for i := 0; i < len(p); {
		c := p[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
		} else if n := validChar(p[i:]); n > 0 {
			i += n
			continue
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

// validChar returns the length of the valid multi-byte character that
// starts p, or 0 when p does not start with one.
func validChar(p []byte) int {
	c := p[0]
	switch {
	case c >= 0xc2 && c <= 0xdf:
		if len(p) > 1 && p[1]&0xc0 == 0x80 {
			return 2
		}
		return 0
	case c >= 0xe0 && c <= 0xef:
		if len(p) < 3 {
			return 0
		}
		lo, hi := byte(0x80), byte(0xbf)
		if c == 0xe0 {
			lo = 0xa0 // no overlong forms
		} else if c == 0xed {
			hi = 0x9f // no surrogates
		}
		if p[1] >= lo && p[1] <= hi && p[2]&0xc0 == 0x80 {
			return 3
		}
		return 0
	}
	if r, size := utf8.DecodeRune(p); r != utf8.RuneError || size > 1 {
		return size
	}
	return 0
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

// The read buffer of a pump: it grows from minBuf to maxBuf while the
// remote floods, and shrinks back when it idles.
const minBuf, maxBuf = 512, 256 << 10

// nextSize is the size of a pump's next read buffer after a read of n
// bytes into one of size bytes.
func nextSize(size, n int) int {
	switch {
	case n == size && size < maxBuf:
		return 2 * size
	case n < minBuf/2 && size > minBuf:
		return minBuf
	}
	return size
}

// DefaultBinaryMin is the least output read at once that goes as bytes
// to a client that takes them (StartOptions.Binary, Config.BinaryMin);
// less, such as a keystroke's echo or a prompt, goes as text: one
// websocket frame instead of two, and escaping that little costs less
// than the second frame.
const DefaultBinaryMin = 8 << 10

// copyOutput is pump's loop. Each read becomes one message of whole
// characters: an incomplete one at the end of a read stays at the start
// of the buffer for the next read, and is lost only if the output ends
// there (then it shows as U+FFFD).
func (t *Terminal) copyOutput(ctx context.Context, r io.Reader) error {
	buf, held := readBuffer(minBuf), 0
	for {
		n, err := r.Read(buf[held:])
		if n > 0 {
			var sendErr error
			if buf, held, sendErr = t.sendRead(ctx, buf, held, n); sendErr != nil {
				return sendErr
			}
		}
		if err != nil {
			if held > 0 {
				text := utf8Stream{carry: buf[:held]}
				if msg, ok := t.m.outputPacket(text.flush(t.m.outputHead(0))); ok {
					t.send(ctx, message{packet: msg})
				}
			}
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

// sendRead sends the whole characters of what buf holds (held bytes
// kept from before, then n read) and returns the buffer for the next
// read, holding the rest. For a client
// that takes output as bytes (StartOptions.Binary), Config.BinaryMin or
// more go out as they are, with no escaping and no copy, in a buffer the
// client recycles once written; anything else goes as text. It is not
// inlined: its frame would enlarge copyOutput's, which every idle pump
// holds while it waits in Read (see pump).
//
//go:noinline
func (t *Terminal) sendRead(ctx context.Context, buf []byte, held, n int) (next []byte, rest int, err error) {
	t.Touch()
	t.bytesOut.Add(uint64(n))
	t.m.output.Add(uint64(n))
	p := buf[:held+n]
	whole := p[:incompleteTail(p)]
	var m message
	next = buf
	if size := nextSize(len(buf), len(p)); t.binary && len(whole) >= t.m.cfg.BinaryMin {
		m.packet, m.data, next = t.m.binaryHead(t.rs != nil), whole, readBuffer(size)
	} else {
		m.packet, _ = t.m.outputPacket(appendEscaped(t.m.outputHead(len(whole)), whole))
		if size != len(buf) {
			next = readBuffer(size)
		}
	}
	rest = copy(next, p[len(whole):])
	if &next[0] != &buf[0] && m.data == nil {
		Recycle(buf) // read from and escaped: ours to give back
	}
	if len(whole) > 0 {
		err = t.send(ctx, m)
	}
	return next, rest, err
}

// readBuffer returns a pump's read buffer of size bytes: from the pools
// when it is large enough to be one's.
func readBuffer(size int) []byte {
	if size < 1<<minPooled {
		return make([]byte, size)
	}
	return packetBuffer(size)[:size]
}

// send sends one ssh-output message of terminal output once the
// previous one has been written to the client's transport.
func (t *Terminal) send(ctx context.Context, m message) error {
	if t.rs != nil {
		return t.rs.log.send(ctx, m)
	}
	select {
	case t.gate <- struct{}{}:
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	m.send(t.client, t.written)
	return nil
}

// send hands m to c.
func (m message) send(c Client, written func()) {
	if m.data != nil {
		c.OutputBinary(m.packet, m.data, written)
		return
	}
	c.Output(m.packet, written)
}

// binaryHead returns the header of a binary ssh-output message, to be
// numbered when it is resumable (a copy then: numbering writes into it).
func (m *Manager) binaryHead(resumable bool) []byte {
	if resumable {
		return append([]byte(nil), m.binHead...)
	}
	return m.binHead
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
	return append(packetBuffer(len(m.head)+n+n/8+len(m.tail)+32), m.head...)
}

// Output packets are the gateway's largest garbage while terminals print
// (up to 288 KiB each); a client that knows when its transport has
// copied one gives it back with Recycle, and the next packet reuses it.
// The pools hold buffers of 1 KiB to 512 KiB by powers of two; smaller
// packets (keystroke echoes) are cheaper to allocate.
const minPooled, maxPooled = 10, 19 // log2 of the sizes

var packetPools [maxPooled - minPooled + 1]sync.Pool // of *[]byte

// packetBuffer returns an empty buffer with room for n bytes.
func packetBuffer(n int) []byte {
	class := bits.Len(uint(n - 1)) // 1<<class >= n
	if class > maxPooled {
		return make([]byte, 0, n)
	}
	class = max(class, minPooled)
	if b, ok := packetPools[class-minPooled].Get().(*[]byte); ok {
		return (*b)[:0]
	}
	return make([]byte, 0, 1<<class)
}

// Recycle gives back a packet that Client.Output got, for reuse. Call it
// only once nothing reads the packet any more: its bytes are overwritten.
// A packet never given back is simply collected.
func Recycle(packet []byte) {
	class := bits.Len(uint(cap(packet))) - 1 // 1<<class <= cap
	if class < minPooled || class > maxPooled || cap(packet) != 1<<class {
		return // not a pool's buffer (see keep)
	}
	packetPools[class-minPooled].Put(&packet)
}

// keep copies a packet that must outlive its sending (a resumable
// terminal's replay) into a buffer Recycle never takes: its capacity is
// not a power of two. The packet itself goes back to the pools.
func keep(packet []byte) []byte {
	c := len(packet)
	if c&(c-1) == 0 {
		c++
	}
	kept := append(make([]byte, 0, c), packet...)
	Recycle(packet)
	return kept
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
