package terminal

import (
	"errors"
	"time"
)

// ErrUnresponsive: the remote host stopped answering keepalive probes
// (sshbridge.Config.KeepaliveInterval and KeepaliveCount).
var ErrUnresponsive = errors.New("the remote host stopped responding")

// keepalive probes a running terminal's remote. The owner goroutine holds
// it: every interval a timer posts evKeepalive; a probe runs on a helper
// goroutine that lives only until the remote answers (or the connection
// closes) and posts evProbed. A probe still unanswered at a tick counts as
// missed; after count missed ticks in a row the terminal ends, so a frozen
// remote is noticed within interval × (count + 1). A healthy session
// costs a timer and, once per interval, a goroutine for a round trip.
type keepalive struct {
	timer   *time.Timer
	pending bool // a probe is on its way
	missed  int  // ticks in a row with a probe unanswered
}

// startKeepalive arms the first probe of a terminal whose shell is up.
func (t *Terminal) startKeepalive() {
	if t.m.cfg.SSH.KeepaliveInterval <= 0 {
		return
	}
	t.ka.timer = time.AfterFunc(t.m.cfg.SSH.KeepaliveInterval, func() { t.post(event{kind: evKeepalive}) })
}

// probeTick handles evKeepalive: it sends a probe unless one is still on
// its way, which then counts as missed.
func (t *Terminal) probeTick() {
	if t.State() != Running {
		return
	}
	if t.ka.pending {
		if t.ka.missed++; t.ka.missed >= t.m.cfg.SSH.KeepaliveCount {
			t.log.Info("remote host stopped responding", "probes", t.ka.missed)
			t.stop(ErrUnresponsive)
			return
		}
	} else {
		t.ka.pending = true
		sess := t.sess.Load()
		go func() { t.post(event{kind: evProbed, err: sess.Probe()}) }() // Ends when the remote answers or the connection closes.
	}
	t.ka.timer.Reset(t.m.cfg.SSH.KeepaliveInterval)
}

// probed handles evProbed: the remote answered (or the connection is
// gone, which the pumps report).
func (t *Terminal) probed(err error) {
	t.ka.pending = false
	if err == nil {
		t.ka.missed = 0
	}
}

// stopKeepalive stops the probes of an ending terminal.
func (t *Terminal) stopKeepalive() {
	if t.ka.timer != nil {
		t.ka.timer.Stop()
	}
}
