package terminal

import (
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"runtime"
	"testing"

	"github.com/alfresco-ssh/alfresco-ssh/sshbridge"
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
		q.push(inputItem{data: string(rune('a' + n%26))}) // Each its own string, as decoded.
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if held := after.HeapAlloc - before.HeapAlloc; held > 2*InputBuffer {
		t.Errorf("a full input buffer of one-byte messages holds %d KiB of heap, want at most %d KiB", held>>10, 2*InputBuffer>>10)
	}
	runtime.KeepAlive(&q)
}

// shellCalls records what the input writer does, in order.
type shellCalls []string

func (c *shellCalls) Write(p []byte) (int, error) {
	*c = append(*c, string(p))
	return len(p), nil
}

func (c *shellCalls) Resize(size sshbridge.WindowSize) error {
	*c = append(*c, fmt.Sprintf("resize %dx%d", size.Rows, size.Cols))
	return nil
}

// TestInputOrdersResizes: a window size reaches the shell between the
// input sent before it and the input sent after it (a page resizes, then
// the user runs "stty size"); sizes given back to back send only the last.
func TestInputOrdersResizes(t *testing.T) {
	term := &Terminal{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	size := func(rows, cols int) inputItem {
		return inputItem{size: &sshbridge.WindowSize{Rows: rows, Cols: cols}}
	}
	for _, item := range []inputItem{
		{data: "a"}, size(30, 100), {data: "stty size\r"},
		size(31, 101), size(32, 102), size(33, 103), {data: "b"}, size(40, 120),
	} {
		if _, ok := term.input.push(item); !ok {
			t.Fatalf("push %+v refused", item)
		}
	}
	var got shellCalls
	term.writeInput(&got)
	want := shellCalls{"a", "resize 30x100", "stty size\r", "resize 33x103", "b", "resize 40x120"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("the shell got %q, want %q", got, want)
	}
	if term.input.size != 0 || term.input.writing {
		t.Errorf("after the writer: size %d, writing %v; want 0, false", term.input.size, term.input.writing)
	}
}
