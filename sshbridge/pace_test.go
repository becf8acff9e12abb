package sshbridge

import (
	"bytes"
	"io"
	"net"
	"slices"
	"testing"
	"time"
)

// chunk is what the remote sends at a time (since the start).
type chunk struct {
	at   time.Duration
	data []byte
}

// scriptConn is a net.Conn on a fake clock whose socket reads return the
// chunks, one per read and at most len(p) of it, each once it has
// arrived (a read waits for it: the clock moves on).
type scriptConn struct {
	net.Conn
	clock  time.Duration
	chunks []chunk
	reads  []int // len(p) of each socket read
}

func (c *scriptConn) Read(p []byte) (int, error) {
	c.reads = append(c.reads, len(p))
	if len(c.chunks) == 0 {
		return 0, io.EOF
	}
	ch := &c.chunks[0]
	c.clock = max(c.clock, ch.at)
	n := copy(p, ch.data)
	if ch.data = ch.data[n:]; len(ch.data) == 0 {
		c.chunks = c.chunks[1:]
	}
	return n, nil
}

// TestPacedConn: a login's and an echo's reads go straight to the socket;
// once 16 KiB or more arrived within 2 ms, each socket read waits out
// the pace after the one before and takes everything into the pooled
// buffer, unless the one before filled it; a quiet spell ends the
// pacing. Every byte arrives once, in order, and no buffer is held after.
func TestPacedConn(t *testing.T) {
	ms := func(f float64) time.Duration { return time.Duration(f * float64(time.Millisecond)) }
	bytesOf := func(n int, c byte) []byte { return bytes.Repeat([]byte{c}, n) }
	chunks := []chunk{
		{0, []byte("a")},              // an echo
		{ms(10), bytesOf(4<<10, 'b')}, // a flood begins: 20 KiB in 0.4 ms
		{ms(10.1), bytesOf(4<<10, 'c')},
		{ms(10.2), bytesOf(4<<10, 'd')},
		{ms(10.3), bytesOf(4<<10, 'e')},
		{ms(10.4), bytesOf(4<<10, 'f')},
		{ms(12.5), bytesOf(32<<10, 'g')},  // read at once: pacing begins after it
		{ms(12.6), bytesOf(64<<10, 'h')},  // paced
		{ms(15), bytesOf(paceBuf+1, 'i')}, // paced, fills the buffer: the rest at once
		{ms(100), []byte("j")},            // after a quiet spell
	}
	var want []byte
	for _, ch := range chunks {
		want = append(want, ch.data...)
	}
	sc := &scriptConn{chunks: chunks}
	c := newPacedConn(sc)
	c.now = func() time.Time { return time.Unix(0, 0).Add(sc.clock) }
	var slept []time.Duration
	c.sleep = func(d time.Duration) { slept = append(slept, d); sc.clock += d }

	var got []byte
	buf := make([]byte, 64<<10)
	for {
		n, err := c.Read(buf)
		got = append(got, buf[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes, want the %d sent, in order", len(got), len(want))
	}
	k := 64 << 10
	wantReads := []int{k, k, k, k, k, k, k, paceBuf, paceBuf, paceBuf, paceBuf, k}
	if !slices.Equal(sc.reads, wantReads) {
		t.Errorf("socket reads of %v bytes, want %v", sc.reads, wantReads)
	}
	if want := []time.Duration{floodPace, floodPace, floodPace}; !slices.Equal(slept, want) {
		t.Errorf("slept %v, want %v (before h, before i, before j; not before the rest of i)", slept, want)
	}
	if c.buf != nil || c.pending != nil || c.flooding {
		t.Error("still flooding, or the pooled buffer is held, after the flood")
	}
}
