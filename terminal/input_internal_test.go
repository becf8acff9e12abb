package terminal

import (
	"runtime"
	"testing"
)

// TestInputBoundCountsMessages: the input buffer bounds memory, not only
// payload: a client that sends one byte per message, while the remote
// reads nothing, is held back (WaitInput blocks) before the messages
// waiting hold more than about InputBuffer bytes of heap.
func TestInputBoundCountsMessages(t *testing.T) {
	var q inputQueue
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for n := 0; q.size < InputBuffer; n++ {
		if n > InputBuffer {
			t.Fatalf("%d one-byte messages wait and the buffer is not full", n)
		}
		q.push(string(rune('a' + n%26))) // Each its own string, as decoded.
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if held := after.HeapAlloc - before.HeapAlloc; held > 2*InputBuffer {
		t.Errorf("a full input buffer of one-byte messages holds %d KiB of heap, want at most %d KiB", held>>10, 2*InputBuffer>>10)
	}
	runtime.KeepAlive(&q)
}
