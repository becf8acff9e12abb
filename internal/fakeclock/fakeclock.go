// Package fakeclock is a clock for tests that moves only when told. Its Now
// replaces the Now (or now) field of the limiters, the certificate reloader
// and anything else that reads the time through a function. Safe for
// concurrent use.
package fakeclock

import (
	"sync"
	"time"
)

// Clock is a manual clock.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// New returns a clock set to a fixed date.
func New() *Clock {
	return &Clock{t: time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)}
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}
