// Package registry lists the gateway's live sessions and ends them, for
// the admin endpoints: Local, this node's terminals; Redis, every node's,
// each node publishing its own to a Redis server they share, where the
// entries of a node that dies expire by themselves, and ending a session
// of another node through a Redis channel every node listens to.
//
// Concurrency: Local and Redis are safe for concurrent use. Redis.Run is
// the one goroutine that writes this node's entries and takes the end
// requests; it ends with its context. Redis is a terminal.Observer that
// only signals Run, so a terminal never waits on Redis.
package registry

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/alfresco-ssh/alfresco-ssh/terminal"
)

// Session is one live session, as GET /admin/sessions shows it. It holds
// no secret.
type Session struct {
	ID      string     `json:"id"`
	Node    string     `json:"node"`
	Client  string     `json:"client"`
	Target  string     `json:"target"`
	User    string     `json:"user"`
	Started *time.Time `json:"started"` // when the shell came up; null before
	Bytes   Bytes      `json:"bytes"`
	State   string     `json:"state"`
}

// Bytes are a session's terminal bytes so far: in from the browser, out
// to it.
type Bytes struct {
	In  uint64 `json:"in"`
	Out uint64 `json:"out"`
}

// Terminals are a node's terminals (terminal.Manager).
type Terminals interface {
	List() []terminal.Info
	Kill(id string) bool
}

// Local is the registry of one node.
type Local struct {
	Node      string
	Terminals Terminals
}

// List returns the node's sessions, the oldest first.
func (l Local) List(context.Context) ([]Session, error) {
	return sessions(l.Node, l.Terminals.List()), nil
}

// Kill ends the session with the id; its user reads that an administrator
// ended it. It reports whether the session was found.
func (l Local) Kill(_ context.Context, id string) (bool, error) {
	return l.Terminals.Kill(id), nil
}

func sessions(node string, infos []terminal.Info) []Session {
	list := make([]Session, 0, len(infos))
	for _, info := range infos {
		s := Session{ID: info.ID, Node: node, Client: info.Client, Target: info.Target, User: info.User,
			Bytes: Bytes{In: info.BytesIn, Out: info.BytesOut}, State: info.State.String()}
		if !info.Started.IsZero() {
			started := info.Started.UTC()
			s.Started = &started
		}
		list = append(list, s)
	}
	sortSessions(list)
	return list
}

// sortSessions orders sessions by node, then the oldest first (those not
// started yet last).
func sortSessions(list []Session) {
	slices.SortFunc(list, func(a, b Session) int {
		if c := cmp.Compare(a.Node, b.Node); c != 0 {
			return c
		}
		switch {
		case a.Started == nil && b.Started == nil:
			return cmp.Compare(a.ID, b.ID)
		case a.Started == nil:
			return 1
		case b.Started == nil:
			return -1
		}
		return a.Started.Compare(*b.Started)
	})
}
