package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/alfresco-ssh/alfresco-ssh/terminal"
)

// Redis keys: a set of the nodes, and per node a string holding the JSON
// list of its sessions, both expiring unless a node renews them (a name
// whose entry has expired leaves the set when the nodes are listed); the
// channel carries the ids of sessions to end.
const (
	nodesKey    = "alfresco-ssh:nodes"
	nodePrefix  = "alfresco-ssh:sessions:"
	killChannel = "alfresco-ssh:kill"
)

// Timing of the entries: a node renews its own every refresh, and at
// once (after settle, which gathers a burst of changes) when a session
// starts or ends; an entry not renewed for entryTTL (a dead node's) is
// gone.
const (
	refresh  = 5 * time.Second
	entryTTL = 3 * refresh
	settle   = 100 * time.Millisecond
)

// forgetScript drops a node from the set of nodes if its entry is
// missing, checked on the server: a node that publishes its entry again
// between a lister's read and this stays listed.
//
// KEYS: the set of nodes, the node's entry. ARGV: the node.
var forgetScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[2]) == 0 then
	return redis.call('SREM', KEYS[1], ARGV[1])
end
return 0
`)

// Redis is the registry of every node sharing a Redis server.
type Redis struct {
	client *redis.Client
	node   string
	log    *slog.Logger
	local  atomic.Pointer[Local] // set by Run
	dirty  chan struct{}         // a session started or ended
}

// NewRedis returns the registry of node (a name unique among the nodes)
// on client. Run publishes the node's sessions.
func NewRedis(client *redis.Client, node string, log *slog.Logger) *Redis {
	return &Redis{client: client, node: node, log: log, dirty: make(chan struct{}, 1)}
}

var _ terminal.Observer = (*Redis)(nil)

// Started, Failed and Ended make Redis a terminal.Observer: a change
// makes Run publish the node's sessions soon.
func (r *Redis) Started(terminal.Info) { r.changed() }

// Failed does nothing: the terminal never was a session.
func (r *Redis) Failed(terminal.Info) {}

// Ended is Started's counterpart.
func (r *Redis) Ended(terminal.Info) { r.changed() }

func (r *Redis) changed() {
	select {
	case r.dirty <- struct{}{}:
	default:
	}
}

// Run publishes the sessions of terms, this node's, until ctx ends, and
// ends those that another node is asked to end. At the end it withdraws
// the node's entry.
func (r *Redis) Run(ctx context.Context, terms Terminals) {
	local := &Local{Node: r.node, Terminals: terms}
	r.local.Store(local)
	sub := r.client.Subscribe(ctx, killChannel)
	defer sub.Close()
	kills := sub.Channel()
	tick := time.NewTicker(refresh)
	defer tick.Stop()
	healthy := true
	publish := func() {
		err := r.publish(ctx, local)
		if err != nil && healthy && ctx.Err() == nil {
			r.log.Warn("session registry: cannot publish this node's sessions", "err", err)
		} else if err == nil && !healthy {
			r.log.Info("session registry: publishing again")
		}
		healthy = err == nil
	}
	publish()
	for {
		select {
		case <-ctx.Done():
			wctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			r.client.TxPipelined(wctx, func(p redis.Pipeliner) error {
				p.Del(wctx, nodePrefix+r.node)
				p.SRem(wctx, nodesKey, r.node)
				return nil
			})
			return
		case <-tick.C:
			publish()
		case <-r.dirty:
			select {
			case <-time.After(settle):
			case <-ctx.Done():
				continue
			}
			publish()
		case m := <-kills:
			if terms.Kill(m.Payload) {
				r.log.Info("session ended by an administrator", "session", m.Payload)
			}
		}
	}
}

// publish writes the node's sessions: one round trip.
func (r *Redis) publish(ctx context.Context, local *Local) error {
	list, _ := local.List(ctx)
	b, err := json.Marshal(list)
	if err != nil {
		return err
	}
	_, err = r.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, nodePrefix+r.node, b, entryTTL)
		p.SAdd(ctx, nodesKey, r.node)
		p.Expire(ctx, nodesKey, entryTTL) // gone with the last node
		return nil
	})
	return err
}

// List returns the sessions of every node: this node's as they are now,
// the others' as they published them (at most refresh ago). Two round
// trips.
func (r *Redis) List(ctx context.Context) ([]Session, error) {
	var list []Session
	if local := r.local.Load(); local != nil {
		list, _ = local.List(ctx)
	}
	others, err := r.others(ctx)
	if err != nil {
		return nil, err
	}
	list = append(list, others...)
	sortSessions(list)
	return list, nil
}

// others are the sessions the other nodes published; a node whose entry
// has expired is dropped from the set.
func (r *Redis) others(ctx context.Context) ([]Session, error) {
	nodes, err := r.client.SMembers(ctx, nodesKey).Result()
	if err != nil {
		return nil, fmt.Errorf("registry: nodes: %w", err)
	}
	keys := make([]string, 0, len(nodes))
	for _, n := range nodes {
		if n != r.node {
			keys = append(keys, nodePrefix+n)
		}
	}
	if len(keys) == 0 {
		return nil, nil
	}
	vals, err := r.client.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, fmt.Errorf("registry: sessions: %w", err)
	}
	var list []Session
	for i, v := range vals {
		s, ok := v.(string)
		if !ok { // expired: the node is gone, unless it is back meanwhile
			forgetScript.Run(ctx, r.client, []string{nodesKey, keys[i]}, keys[i][len(nodePrefix):])
			continue
		}
		var node []Session
		if err := json.Unmarshal([]byte(s), &node); err != nil {
			r.log.Warn("session registry: unreadable entry", "key", keys[i], "err", err)
			continue
		}
		list = append(list, node...)
	}
	return list, nil
}

// Kill ends the session with the id on whichever node runs it: here at
// once, elsewhere through the channel. It reports whether the session was
// found.
func (r *Redis) Kill(ctx context.Context, id string) (bool, error) {
	if local := r.local.Load(); local != nil {
		if ok, _ := local.Kill(ctx, id); ok {
			return true, nil
		}
	}
	others, err := r.others(ctx)
	if err != nil {
		return false, err
	}
	for _, s := range others {
		if s.ID == id {
			if err := r.client.Publish(ctx, killChannel, id).Err(); err != nil {
				return false, fmt.Errorf("registry: kill: %w", err)
			}
			return true, nil
		}
	}
	return false, nil
}
