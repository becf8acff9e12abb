package terminal

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestReplayBound: without acknowledgements a replay takes output until
// it holds its limit, then send waits (the pump stops reading the SSH
// channel); an acknowledgement makes room again.
func TestReplayBound(t *testing.T) {
	const limit, size = 1000, 300
	r := newReplay(nil, limit, 1) // detached
	packet := func() []byte { return []byte(`{"output":"` + strings.Repeat("x", size-len(`{"output":""}]`)) + `"}]`) }
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	n := 0
	for r.send(ctx, message{packet: packet()}) == nil {
		n++
	}
	if r.unacked >= limit+size+20 || n != 4 {
		t.Errorf("took %d packets, %d bytes unacknowledged; want 4, under %d", n, r.unacked, limit+size+20)
	}
	r.ack(2)
	if err := r.send(t.Context(), message{packet: packet()}); err != nil {
		t.Errorf("send after an ack: %v", err)
	}
	if r.seq != 5 || r.acked != 2 || len(r.msgs) != 5 {
		t.Errorf("got seq %d, acked %d, %d kept; want 5, 2, 5 (acknowledged ones stay for a repaint)", r.seq, r.acked, len(r.msgs))
	}
}
