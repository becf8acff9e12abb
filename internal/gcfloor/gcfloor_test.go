package gcfloor

import (
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"testing"
	"time"
)

func TestPercentFor(t *testing.T) {
	const MiB = 1 << 20
	tests := []struct {
		name        string
		floor, live uint64
		base, want  int
	}{
		{"small heap is raised to the floor", 64 * MiB, 8 * MiB, 100, 700},
		{"rounds up", 64 * MiB, 7 * MiB, 100, 815},
		{"before the first collection", 64 * MiB, 0, 100, 1600},
		{"minimum heap caps it", 64 * MiB, 1 * MiB, 100, 1600},
		{"heap at the floor keeps base", 64 * MiB, 64 * MiB, 100, 100},
		{"large heap keeps base", 64 * MiB, 500 * MiB, 100, 100},
		{"never below base", 64 * MiB, 20 * MiB, 400, 400},
		{"floor below the minimum heap keeps base", 2 * MiB, 1 * MiB, 100, 100},
		{"odd ratio rounds up", 10 * MiB, 3 * MiB, 100, 234},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := percentFor(tt.floor, tt.live, tt.base); got != tt.want {
				t.Errorf("percentFor(%d, %d, %d) = %d, want %d", tt.floor, tt.live, tt.base, got, tt.want)
			}
		})
	}
}

// TestStart checks that the floor raises GOGC for this test's small heap,
// follows the live heap after a collection, and that stop restores GOGC.
func TestStart(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	const floor = 32 << 20
	stop := Start(floor, nil)
	defer stop()
	if got := gogc(); got <= 100 {
		t.Fatalf("GOGC with a %d MiB floor and a small heap: got %d, want above 100", floor>>20, got)
	}
	if other := Start(floor, nil); gogc() <= 100 {
		t.Fatal("a second Start changed GOGC")
	} else {
		other() // a no-op
	}

	// A live heap above the floor: after the next collection, GOGC is
	// back to 100.
	big := make([]byte, 2*floor)
	for i := range big {
		big[i] = 1
	}
	waitGOGC(t, func(p int) bool { return p == 100 }, func() {})
	runtime.KeepAlive(big)

	stop()
	if got := gogc(); got != 100 {
		t.Errorf("GOGC after stop: got %d, want 100", got)
	}
	runtime.GC() // big is gone
	if again := Start(floor, nil); gogc() <= 100 {
		t.Error("Start after stop did nothing")
	} else {
		again()
	}
}

// TestProgress checks that the floor is kept only while the progress
// counter grows.
func TestProgress(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	var moved atomic.Uint64
	stop := Start(32<<20, moved.Load)
	defer stop()
	if got := gogc(); got != 100 {
		t.Fatalf("GOGC before any progress: got %d, want 100", got)
	}
	waitGOGC(t, func(p int) bool { return p > 100 }, func() { moved.Add(minProgress) })
	// Too little progress between collections: back to the default.
	waitGOGC(t, func(p int) bool { return p == 100 }, func() { moved.Add(minProgress - 1) })
	waitGOGC(t, func(p int) bool { return p > 100 }, func() { moved.Add(minProgress) })
	// Progress, but most of the garbage is not from it (sessions opening).
	waitGOGC(t, func(p int) bool { return p == 100 }, func() {
		moved.Add(minProgress)
		for range 16 * progressShare {
			sink = make([]byte, minProgress/8)
		}
	})
}

var sink []byte

// waitGOGC collects garbage, calling between collections, until cond holds
// for GOGC.
func waitGOGC(t *testing.T, cond func(int) bool, between func()) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond(gogc()) {
		if time.Now().After(deadline) {
			t.Fatalf("GOGC: got %d, still not the value wanted", gogc())
		}
		between()
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
}

func TestGOGC(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(250))
	if got := gogc(); got != 250 {
		t.Errorf("gogc() with GOGC=250: got %d", got)
	}
	debug.SetGCPercent(-1)
	if got := gogc(); got != -1 {
		t.Errorf("gogc() with GOGC=off: got %d, want -1", got)
	}
}

func TestStartDisabled(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	Start(0, nil)()
	if got := gogc(); got != 100 {
		t.Errorf("GOGC with no floor: got %d, want 100", got)
	}
	debug.SetGCPercent(-1)
	stop := Start(64<<20, nil)
	if got := gogc(); got != -1 {
		t.Errorf("GOGC=off with a floor: got %d, want -1", got)
	}
	stop()
}
