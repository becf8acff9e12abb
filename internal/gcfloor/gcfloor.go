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
// The floor is kept only while the program moves data: its progress
// counter grew, since the previous collection, by at least an eighth of
// what was allocated meanwhile (and minProgress), so that the garbage is
// mostly that of moving data, which is short-lived. Otherwise, for instance while many sessions open at once,
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

// minProgress is the least the progress counter must grow between two
// collections for the floor to be kept, and progressShare the least share
// of the bytes allocated meanwhile it must grow by.
const (
	minProgress   = 64 << 10
	progressShare = 8
)

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
	base := gogc()
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
	allocs0   uint64 // bytes allocated, likewise
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
// progress and allocation since the previous adjust.
func (f *floorKeeper) adjust() {
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(sample)
	live, allocs := uint64Value(sample[0]), uint64Value(sample[1])
	f.mu.Lock()
	defer f.mu.Unlock()
	floor := f.floor
	if f.progress != nil {
		p := f.progress()
		if moved := p - f.progress0; moved < minProgress || moved < (allocs-f.allocs0)/progressShare {
			floor = 0
		}
		f.progress0, f.allocs0 = p, allocs
	}
	if want := percentFor(floor, live, f.base); !f.stopped && want != f.current {
		f.current = want
		debug.SetGCPercent(want)
	}
}

// gogc returns the GOGC in effect (-1 when off).
func gogc() int {
	sample := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(sample)
	if sample[0].Value.Kind() != metrics.KindUint64 {
		return 100
	}
	if p := sample[0].Value.Uint64(); p <= math.MaxInt32 {
		return int(p)
	}
	return -1
}

func uint64Value(s metrics.Sample) uint64 {
	if s.Value.Kind() == metrics.KindUint64 {
		return s.Value.Uint64()
	}
	return 0
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
