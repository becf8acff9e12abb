package redislimit

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/alfresco-ssh/alfresco-ssh/internal/servicetest"

	"github.com/alfresco-ssh/alfresco-ssh/policy"
)

// reserve returns Reserve's refusal, or nil when it reserved (the attempt
// is then ended with o).
func reserve(t *testing.T, b *Login, l policy.Login, o policy.Outcome) *policy.LoginRefusedError {
	t.Helper()
	a, err := b.Reserve(t.Context(), l)
	var refused *policy.LoginRefusedError
	switch {
	case err == nil:
		if err := a.Done(t.Context(), o); err != nil {
			t.Fatal(err)
		}
		return nil
	case errors.As(err, &refused):
		return refused
	}
	t.Fatalf("Reserve: got %v, want an attempt or a refusal", err)
	return nil
}

// TestLoginAcrossNodes: two nodes' back-offs on one Redis (miniredis, its
// clock moved by the test) share the failures of clients and accounts.
func TestLoginAcrossNodes(t *testing.T) {
	m := miniredis.RunT(t)
	now := time.Now()
	m.SetTime(now)
	newLogin := func() *Login {
		return NewLogin(client(t, m.Addr()), 2, 10*time.Minute, 30*time.Second, 15*time.Minute, time.Minute)
	}
	a, b := newLogin(), newLogin()
	alice := policy.Login{Client: "192.0.2.1", Account: "alice@10.0.0.5:22"}

	if r := reserve(t, a, alice, policy.Failed); r != nil {
		t.Fatalf("first login: got %v, want it reserved", r)
	}
	if r := reserve(t, b, alice, policy.Failed); r != nil {
		t.Fatalf("second login on the other node: got %v, want it reserved", r)
	}
	r := reserve(t, a, alice, policy.Succeeded)
	if r == nil || r.Account || r.RetryAfter != 30*time.Second {
		t.Fatalf("after two failures: got %+v, want the client blocked for 30s", r)
	}
	other := policy.Login{Client: "192.0.2.9", Account: alice.Account}
	if r := reserve(t, b, other, policy.Succeeded); r == nil || !r.Account {
		t.Fatalf("another client on the account: got %+v, want the account blocked", r)
	}
	now = now.Add(30 * time.Second)
	m.SetTime(now)
	if r := reserve(t, b, alice, policy.Failed); r != nil {
		t.Fatalf("after the block: got %v, want it reserved", r)
	}
	if r := reserve(t, a, alice, policy.Abandoned); r == nil || r.RetryAfter != time.Minute {
		t.Fatalf("after a third failure: got %+v, want a block of 1m (doubled)", r)
	}

	// A success forgets the failures of its own pair only.
	bob := policy.Login{Client: "192.0.2.2", Account: "bob@10.0.0.5:22"}
	reserve(t, a, bob, policy.Failed)
	reserve(t, b, bob, policy.Succeeded)
	if r := reserve(t, a, bob, policy.Failed); r != nil {
		t.Fatalf("a failure after a success: got %v, want it reserved", r)
	}
	if r := reserve(t, a, bob, policy.Abandoned); r != nil {
		t.Fatalf("one failure since the success: got %v, want it reserved", r)
	}
}

// TestLoginInFlight: attempts in flight count across nodes; a further one
// waits until one ends, or until a dead node's reservation expires.
func TestLoginInFlight(t *testing.T) {
	m := miniredis.RunT(t)
	now := time.Now()
	m.SetTime(now)
	a := NewLogin(client(t, m.Addr()), 2, 10*time.Minute, 30*time.Second, 15*time.Minute, time.Minute)
	b := NewLogin(client(t, m.Addr()), 2, 10*time.Minute, 30*time.Second, 15*time.Minute, time.Minute)
	a.poll, b.poll = time.Millisecond, time.Millisecond
	l := policy.Login{Client: "192.0.2.1", Account: "alice@10.0.0.5:22"}
	first, err := a.Reserve(t.Context(), l)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Reserve(t.Context(), l); err != nil { // never ended: its node "dies"
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if _, err := b.Reserve(short, l); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a third attempt in flight: got %v, want it to wait until its context ends", err)
	}
	got := make(chan error, 1)
	go func() {
		a, err := b.Reserve(t.Context(), l)
		if err == nil {
			err = a.Done(context.Background(), policy.Succeeded)
		}
		got <- err
	}()
	first.Done(t.Context(), policy.Abandoned)
	if err := <-got; err != nil {
		t.Fatalf("after one ended: got %v, want the waiting attempt reserved", err)
	}
	// The dead node's reservation still holds one place; it expires after
	// hold.
	second, err := a.Reserve(t.Context(), l)
	if err != nil {
		t.Fatal(err)
	}
	short, cancel = context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if _, err := a.Reserve(short, l); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("with the dead node's reservation: got %v, want a wait", err)
	}
	m.SetTime(now.Add(time.Minute + time.Second))
	if _, err := a.Reserve(t.Context(), l); err != nil {
		t.Fatalf("after the dead node's reservation expired: got %v", err)
	}
	second.Done(t.Context(), policy.Abandoned)
}

// TestLoginRedisDown: an unreachable Redis is an error, not a refusal.
func TestLoginRedisDown(t *testing.T) {
	m := miniredis.RunT(t)
	b := NewLogin(client(t, m.Addr()), 2, 10*time.Minute, 30*time.Second, 15*time.Minute, time.Minute)
	m.Close()
	_, err := b.Reserve(t.Context(), policy.Login{Client: "c", Account: "a"})
	var refused *policy.LoginRefusedError
	if err == nil || errors.As(err, &refused) {
		t.Fatalf("got %v, want an error that is not a refusal", err)
	}
}

// TestLoginRealRedis: Debian's redis-server runs the scripts as miniredis
// does: 12 parallel failing logins from one client on two nodes, limit 3:
// exactly 3 are let through, the rest wait and are then refused.
func TestLoginRealRedis(t *testing.T) {
	srv := servicetest.StartRedis(t)
	nodes := []*Login{
		NewLogin(client(t, srv.Addr), 3, 10*time.Minute, 30*time.Second, 15*time.Minute, time.Minute),
		NewLogin(client(t, srv.Addr), 3, 10*time.Minute, 30*time.Second, 15*time.Minute, time.Minute),
	}
	results := make(chan *policy.LoginRefusedError, 12)
	for i := range 12 {
		go func() {
			a, err := nodes[i%2].Reserve(t.Context(), policy.Login{Client: "192.0.2.1", Account: "alice@h:22"})
			var refused *policy.LoginRefusedError
			switch {
			case err == nil:
				a.Done(context.Background(), policy.Failed)
			case !errors.As(err, &refused):
				t.Errorf("got %v, want an attempt or a refusal", err)
			}
			results <- refused
		}()
	}
	through := 0
	for range 12 {
		if r := <-results; r == nil {
			through++
		} else if r.Account || r.RetryAfter <= 0 || r.RetryAfter > 30*time.Second {
			// What is left of the first block (not a doubled one) when
			// the refusal came, however late; TestLoginAcrossNodes
			// checks exact values on miniredis's clock.
			t.Errorf("got refusal %+v, want the client blocked for at most 30 s", r)
		}
	}
	if through != 3 {
		t.Errorf("got %d logins through, want 3", through)
	}
}
