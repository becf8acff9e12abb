package spareprocs

import (
	"runtime"
	"testing"
)

func TestSet(t *testing.T) {
	// The runtime's default, whatever GOMAXPROCS this test process got.
	orig := runtime.GOMAXPROCS(0)
	t.Cleanup(func() { runtime.GOMAXPROCS(orig) })
	t.Setenv("GOMAXPROCS", "")
	runtime.SetDefaultGOMAXPROCS()
	base := runtime.GOMAXPROCS(0)
	check := func(what string, want int) {
		t.Helper()
		if got := runtime.GOMAXPROCS(0); got != want {
			t.Errorf("%s: GOMAXPROCS %d, want %d", what, got, want)
		}
	}
	Set(0)()
	check("Set(0)", base)
	restore := Set(2)
	check("Set(2)", base+2)
	Set(2)() // Not cumulative: from the default each time.
	check("Set(2) again, restored", base+2)
	restore()
	check("restored", base)
	t.Setenv("GOMAXPROCS", "1")
	defer Set(2)()
	check("Set(2) with GOMAXPROCS set", base)
}
