package terminal

import (
	"errors"
	"sync"
	"syscall"
	"time"
)

// capacityInterval is how often at most the gateway logs that it has run
// out of file descriptors.
const capacityInterval = time.Minute

// capacityLog counts the failures for want of file descriptors between
// two log lines.
type capacityLog struct {
	mu       sync.Mutex
	last     time.Time // of the last log line
	failures int       // since then
}

// outOfFiles reports whether err says the process or the system has run
// out of file descriptors.
func outOfFiles(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)
}

// AtCapacity reports whether err says that the gateway has run out of file
// descriptors (EMFILE, ENFILE), so that it is at capacity; if so, it logs
// it at most once per minute, with the number of failures since the last
// line, instead of once per failure. Terminals call it for their dial
// errors (the user then reads that the gateway is at capacity); package
// server for its listener's.
func (m *Manager) AtCapacity(err error) bool {
	if !outOfFiles(err) {
		return false
	}
	c := &m.capacity
	c.mu.Lock()
	now := time.Now()
	c.failures++
	if !c.last.IsZero() && now.Sub(c.last) < capacityInterval {
		c.mu.Unlock()
		return true
	}
	failures := c.failures
	c.last, c.failures = now, 0
	c.mu.Unlock()
	m.cfg.Logger.Warn("out of file descriptors: the gateway is at capacity, new connections fail",
		"failures", failures, "err", err)
	return true
}
