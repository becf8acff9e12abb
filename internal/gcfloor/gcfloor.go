// Package gcfloor keeps the garbage collector's heap goal at or above a
// floor while the live heap is small.
//
// The gateway's live heap is small (tens of KiB per session) while its
// output path turns over garbage as fast as terminals print: x/crypto
// allocates every SSH packet it reads, and the Socket.IO library copies
// every message it sends. With the default GOGC=100 and a few MiB live,
// a flooding session makes the collector run twenty times a second, and
// its pauses and assists land on every other session's keystrokes. A floor
// of a few tens of MiB makes that rare; once the live heap is large enough
// that GOGC alone gives a goal above the floor, nothing changes.
//
// The floor is kept only while the program moves data (its progress counter
// grew by minProgress since the previous collection): the garbage then is
// short-lived. Otherwise, for instance while many sessions open at once,
// a floor would spread their long-lived objects over more memory pages
// (measured: about 13 KiB more per session after 200 opened at once with
// a 64 MiB floor), so Go's default pacing applies.
//
// GOGC is adjusted after every collection (seen by a cleanup of an object
// made unreachable for the purpose: one tiny allocation per cycle).
// GOMEMLIMIT still applies as usual.
package gcfloor

import (
	"math"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// DefaultFloor is the gateway's default floor: a flood then makes the
// collector run about once per 60 MiB it turns over instead of once per
// few MiB.
const DefaultFloor = 64 << 20

// minProgress is how much the progress counter must grow between two
// collections for the floor to be kept.
const minProgress = 1 << 20

// minHeap is the runtime's minimum heap goal at GOGC=100; it scales with
// GOGC like the goal does, so a GOGC above 100 × floor / minHeap would put
// the goal above the floor even for an empty heap.
const minHeap = 4 << 20

// active is whether a floor is kept: GOGC is process-wide, so one at most.
var active sync.Mutex

// Start keeps the heap goal at least floor bytes while progress (a counter
// of the bytes the program moves, such as terminal output; nil: always)
// grows, until stop is called, which restores the GOGC in effect at Start.
// It does nothing, and stop does nothing, when floor is 0, the collector is
// off (GOGC=off), or another floor is active.
func Start(floor uint64, progress func() uint64) (stop func()) {
	if floor == 0 || !active.TryLock() {
		return func() {}
	}
	base := debug.SetGCPercent(100)
	debug.SetGCPercent(base)
	if base < 0 {
		active.Unlock()
		return func() {}
	}
	f := &floorKeeper{floor: floor, progress: progress, base: base, current: base}
	f.adjust()
	f.arm()
	return f.stop
}

type floorKeeper struct {
	floor    uint64
	progress func() uint64
	base     int

	mu        sync.Mutex
	current   int    // GOGC set
	progress0 uint64 // progress at the previous adjust
	stopped   bool
}

// sentinel is what the cleanup watches: made unreachable at once, it is
// found by the next collection. It holds a pointer so that it is never
// batched with other tiny objects.
type sentinel struct{ _ *int }

// arm runs adjust after the next collection, and arms again.
func (f *floorKeeper) arm() {
	runtime.AddCleanup(&sentinel{}, func(f *floorKeeper) {
		f.mu.Lock()
		stopped := f.stopped
		f.mu.Unlock()
		if !stopped {
			f.adjust()
			f.arm()
		}
	}, f)
}

// adjust sets GOGC for the live heap the last collection found, and the
// progress since the previous adjust.
func (f *floorKeeper) adjust() {
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(sample)
	var live uint64
	if sample[0].Value.Kind() == metrics.KindUint64 {
		live = sample[0].Value.Uint64()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	floor := f.floor
	if f.progress != nil {
		p := f.progress()
		if p-f.progress0 < minProgress {
			floor = 0
		}
		f.progress0 = p
	}
	if want := percentFor(floor, live, f.base); !f.stopped && want != f.current {
		f.current = want
		debug.SetGCPercent(want)
	}
}

func (f *floorKeeper) stop() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.stopped {
		f.stopped = true
		debug.SetGCPercent(f.base)
		active.Unlock()
	}
}

// percentFor returns the GOGC that puts the heap goal, the larger of
// live × (1 + GOGC/100) and minHeap × GOGC/100, at the floor, and never
// less than base. Before the first collection live is 0.
func percentFor(floor, live uint64, base int) int {
	if live >= floor {
		return base
	}
	limit := 100 * float64(floor) / minHeap
	p := limit
	if live > 0 {
		p = min(limit, math.Ceil(100*float64(floor-live)/float64(live)))
	}
	return max(base, int(p))
}
