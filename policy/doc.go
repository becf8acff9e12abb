// Package policy holds the gateway's decisions over plain values, apart
// from transport code: where it may connect (TargetPolicy, also the dialer
// that enforces it), and the abuse limits behind small interfaces that an
// implementation shared by several nodes can satisfy: RateLimit for
// credential creations, LoginLimit for the back-off on failed SSH logins
// (attempts reserved before the dial), SessionLimit for concurrent
// terminals, with in-memory implementations (RateLimiter, AuthBackoff,
// SessionCounter). ClientPrefix turns a client's address into its key in
// the per-client limits. The Echo middleware that applies them stays in
// package server.
//
// Concurrency: every type here is safe for concurrent use; none blocks its
// caller on another, none starts a goroutine.
package policy
