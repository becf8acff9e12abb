// Package nodns gives tests the resolvers of a machine without working
// DNS: one whose DNS server never answers, and one with no DNS server at
// all. A name looked up through either never resolves.
//
// Concurrency: the resolvers are safe for concurrent use.
package nodns

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
)

// Silent returns a resolver whose DNS server never answers: a lookup ends
// when its context does. The resolver keeps asking after that, until the
// test ends, when its connections close and it asks no more.
func Silent(t testing.TB) *net.Resolver {
	t.Helper()
	server, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return resolver(t, server)
}

// Absent returns a resolver with no DNS server: a lookup fails at once.
func Absent(t testing.TB) *net.Resolver {
	t.Helper()
	server, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	server.Close() // its port refuses
	return resolver(t, server)
}

func resolver(t testing.TB, server net.PacketConn) *net.Resolver {
	var (
		mu    sync.Mutex
		conns []net.Conn
		ended bool
	)
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		ended = true
		for _, c := range conns {
			c.Close()
		}
		server.Close()
	})
	addr := server.LocalAddr().String()
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		mu.Lock()
		defer mu.Unlock()
		if ended {
			return nil, errors.New("nodns: the test has ended")
		}
		c, err := (&net.Dialer{}).DialContext(ctx, "udp", addr)
		if err == nil {
			conns = append(conns, c)
		}
		return c, err
	}}
}
