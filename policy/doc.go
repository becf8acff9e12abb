// Package policy holds the gateway's decisions over plain values, apart
// from transport code: where it may connect (TargetPolicy, also the dialer
// that enforces it), and the abuse limits (RateLimiter for credential
// creations, AuthBackoff for failed SSH logins, SessionCounter for
// concurrent terminals). The Echo middleware that applies them stays in
// package server.
//
// Concurrency: every type here is safe for concurrent use; none blocks its
// caller on another, none starts a goroutine.
package policy
