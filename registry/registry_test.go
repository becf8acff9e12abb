package registry

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/alfresco-ssh/alfresco-ssh/internal/waitfor"
	"github.com/alfresco-ssh/alfresco-ssh/terminal"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeTerminals are a node's terminals.
type fakeTerminals struct {
	mu     sync.Mutex
	infos  []terminal.Info
	killed chan string
}

func (f *fakeTerminals) List() []terminal.Info {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]terminal.Info(nil), f.infos...)
}

func (f *fakeTerminals) Kill(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, info := range f.infos {
		if info.ID == id {
			f.infos = append(f.infos[:i], f.infos[i+1:]...)
			f.killed <- id
			return true
		}
	}
	return false
}

// runNode runs the registry of a node with one running session until the
// test ends, or until the returned stop.
func runNode(t *testing.T, addr, node, session string) (*Redis, *fakeTerminals, func()) {
	c := redis.NewClient(&redis.Options{Addr: addr})
	r := NewRedis(c, node, slog.New(slog.DiscardHandler))
	terms := &fakeTerminals{killed: make(chan string, 1), infos: []terminal.Info{{
		ID: session, Client: "192.0.2.1", Target: "10.0.0.5:22", User: "alice",
		Started: time.Now(), BytesIn: 3, BytesOut: 40, State: terminal.Running,
	}}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		r.Run(ctx, terms)
		close(done)
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			<-done
			c.Close()
		})
	}
	t.Cleanup(stop)
	return r, terms, stop
}

// ids lists the session ids of r's List by node.
func ids(t *testing.T, r *Redis) map[string]string {
	t.Helper()
	list, err := r.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, s := range list {
		m[s.ID] = s.Node
	}
	return m
}

// TestRedisRegistry: two nodes see each other's sessions, end one on the
// other node, and forget a node that stops renewing its entry (dies) once
// the entry expires, or at once when it stops cleanly.
func TestRedisRegistry(t *testing.T) {
	m := miniredis.RunT(t)
	a, _, stopA := runNode(t, m.Addr(), "a:1", "sa")
	b, termsB, _ := runNode(t, m.Addr(), "b:1", "sb")
	// Each node lists its own sessions at once, the other's once that
	// node has published them.
	for _, n := range []struct {
		name string
		r    *Redis
	}{{"a", a}, {"b", b}} {
		var got map[string]string
		waitfor.Cond(t, "both sessions on node "+n.name, func() bool { got = ids(t, n.r); return len(got) == 2 })
		if got["sa"] != "a:1" || got["sb"] != "b:1" {
			t.Fatalf("node %s lists %v, want sa on a:1 and sb on b:1", n.name, got)
		}
	}

	found, err := a.Kill(t.Context(), "sb")
	if err != nil || !found {
		t.Fatalf("Kill of node b's session on node a: got %v, %v", found, err)
	}
	select {
	case id := <-termsB.killed:
		if id != "sb" {
			t.Errorf("node b killed %q, want sb", id)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("node b did not end its session")
	}
	if found, err := a.Kill(t.Context(), "nope"); err != nil || found {
		t.Errorf("Kill of an unknown id: got %v, %v, want not found", found, err)
	}

	// A node that dies leaves an entry that expires; so does the set of
	// nodes once the last one is gone.
	if ttl := m.TTL(nodesKey); ttl <= 0 || ttl > entryTTL {
		t.Errorf("the set of nodes expires in %v, want at most %v", ttl, entryTTL)
	}
	m.Set(nodePrefix+"dead:1", `[{"id":"sd","node":"dead:1","bytes":{"in":0,"out":0},"state":"running"}]`)
	m.SetTTL(nodePrefix+"dead:1", entryTTL)
	m.SAdd(nodesKey, "dead:1")
	m.SetTTL(nodesKey, 2*entryTTL) // the live nodes keep renewing the set
	if got := ids(t, a); got["sd"] != "dead:1" {
		t.Fatalf("got %v, want the dead node's session before its entry expires", got)
	}
	m.FastForward(entryTTL)
	if got := ids(t, a); got["sd"] != "" {
		t.Errorf("got %v after the entry expired, want the dead node's session gone", got)
	}
	if ok, _ := m.SIsMember(nodesKey, "dead:1"); ok {
		t.Error("the dead node is still in the set of nodes")
	}

	stopA()
	if got := ids(t, b); got["sa"] != "" {
		t.Errorf("node b lists %v after node a stopped, want its session gone", got)
	}
}

// publishAfterMGet is a hook that runs publish once an MGET has been
// answered: a node that publishes its entry again between another node's
// read of the entries and what that node does with them.
type publishAfterMGet struct{ publish func() }

func (publishAfterMGet) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h publishAfterMGet) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if cmd.Name() == "mget" {
			h.publish()
		}
		return err
	}
}

func (publishAfterMGet) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// TestRedisRegistryKeepsANodeBackMeanwhile: a node whose entry had
// expired (Redis out of its reach for a while) and that publishes it again
// while another node lists the nodes stays in the set of nodes: the
// lister drops only a node whose entry is still missing.
func TestRedisRegistryKeepsANodeBackMeanwhile(t *testing.T) {
	m := miniredis.RunT(t)
	a, _, _ := runNode(t, m.Addr(), "a:1", "sa")
	waitfor.Cond(t, "node a's entry", func() bool { return m.Exists(nodePrefix + "a:1") })
	m.SAdd(nodesKey, "back:1") // its entry has expired
	a.client.AddHook(publishAfterMGet{func() {
		m.Set(nodePrefix+"back:1", `[{"id":"sk","node":"back:1","bytes":{"in":0,"out":0},"state":"running"}]`)
		m.SAdd(nodesKey, "back:1")
	}})
	ids(t, a)
	if ok, _ := m.SIsMember(nodesKey, "back:1"); !ok {
		t.Error("a node that published its entry again was dropped from the set of nodes")
	}
	if got := ids(t, a); got["sk"] != "back:1" {
		t.Errorf("got %v, want the session of the node that is back", got)
	}
}
