// Package spareprocs gives the Go scheduler a few more Ps (GOMAXPROCS)
// than the CPUs the process may use.
//
// The gateway shares its CPUs with sshd, proxies and whatever else runs on
// the box. When the kernel preempts a thread that holds one of the
// scheduler's Ps, the goroutines queued on that P wait until the kernel
// runs the thread again: a keystroke's echo then waits behind a flooding
// terminal's work for a scheduler tick of the kernel, though the gateway
// itself has CPU to spare. With spare Ps, a goroutine woken by the
// network finds an idle P, whose thread the kernel wakes at once (it
// favours threads that slept), as it would a separate process.
//
// Measured with the bench's isolation phase on 2 CPUs (four runs each):
// a flooding neighbour raised another terminal's echo p99 8.1 ms more in
// the same process than through a second gateway process with
// GOMAXPROCS=2, 2.6 ms with 3 and 2.2 ms with 4; output throughput and
// idle echo did not change beyond the noise.
package spareprocs

import (
	"os"
	"runtime"
)

// Default is how many Ps the gateway adds.
const Default = 2

// Set raises GOMAXPROCS by extra over the runtime's default (the CPUs the
// process may use) until restore is called, which puts back the value in
// effect before. The GOMAXPROCS environment variable, when set, wins;
// extra 0 changes nothing. Setting GOMAXPROCS stops the runtime from
// following later changes of the CPU limit.
func Set(extra int) (restore func()) {
	if extra <= 0 || os.Getenv("GOMAXPROCS") != "" {
		return func() {}
	}
	before := runtime.GOMAXPROCS(0)
	runtime.SetDefaultGOMAXPROCS()
	runtime.GOMAXPROCS(runtime.GOMAXPROCS(0) + extra)
	return func() { runtime.GOMAXPROCS(before) }
}
