package sshbridge

import (
	"net"
	"sync"
	"time"
)

// Reading a flooding connection as fast as its packets arrive costs the
// gateway a wake-up per packet (a few KB each from an OpenSSH pty): on
// the benchmark box that was most of its CPU per MB of output. While a
// connection floods (floodBytes or more arrived in the last floodPace),
// pacedConn reads its socket at most once per floodPace instead: what
// arrives meanwhile waits in the kernel's socket buffer and one read
// takes it all. A read that fills the buffer is followed at once by the
// next (the remote is ahead), so pacing never caps throughput. Logins,
// echoes and prompts (a few KB at most) are never paced; a flood's own
// output waits at most floodPace.
const (
	floodPace  = 2 * time.Millisecond
	floodBytes = 16 << 10 // in one floodPace: 8 MB/s
	paceBuf    = 256 << 10
)

// paceBufs holds the read buffers of flooding connections: an idle
// connection holds none.
var paceBufs = sync.Pool{New: func() any { return new([paceBuf]byte) }}

// pacedConn paces the reads of a connection (see floodPace). One
// goroutine reads it (x/crypto's reader); the rest of net.Conn passes
// through.
type pacedConn struct {
	net.Conn
	sleep func(time.Duration) // time.Sleep; tests replace it
	now   func() time.Time    // time.Now; tests replace it

	last     time.Time      // of the last socket read
	full     bool           // it filled what it read into
	window   time.Time      // when the current floodPace began
	bytes    int            // read since then
	flooding bool           // the last whole floodPace had floodBytes
	buf      *[paceBuf]byte // while flooding; holds pending
	pending  []byte
}

func newPacedConn(c net.Conn) *pacedConn {
	return &pacedConn{Conn: c, sleep: time.Sleep, now: time.Now}
}

func (c *pacedConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		c.release()
		return n, nil
	}
	if !c.flooding {
		return c.read(p)
	}
	if wait := floodPace - c.now().Sub(c.last); wait > 0 && !c.full {
		c.sleep(wait)
	}
	c.buf = paceBufs.Get().(*[paceBuf]byte)
	n, err := c.read(c.buf[:])
	m := copy(p, c.buf[:n])
	c.pending = c.buf[m:n]
	c.release()
	return m, err
}

// read reads the socket once, and counts what it read.
func (c *pacedConn) read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.last, c.full = c.now(), n == len(p)
	if c.last.Sub(c.window) >= floodPace {
		c.flooding = c.bytes >= floodBytes && c.last.Sub(c.window) < 2*floodPace
		c.window, c.bytes = c.last, 0
	}
	c.bytes += n
	return n, err
}

// release gives the buffer back once nothing in it is pending.
func (c *pacedConn) release() {
	if len(c.pending) == 0 && c.buf != nil {
		paceBufs.Put(c.buf)
		c.buf, c.pending = nil, nil
	}
}
