package server

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/alfresco-ssh/alfresco-ssh/policy"
	"github.com/alfresco-ssh/alfresco-ssh/sshbridge"
)

// How the gateway applies policy's limits. Every per-client limit is keyed
// by clientKey: the client's address cut to Config.ClientPrefix.

// limitTimeout bounds recording a login's outcome, which the terminal's
// own context (cancelled when the client leaves) must not cut short.
const limitTimeout = 5 * time.Second

// newLimits returns cfg.Limits with in-memory limits built from cfg's
// numbers in place of its nil fields.
func newLimits(cfg Config) policy.Limits {
	l := cfg.Limits
	if l.Creates == nil {
		l.Creates = policy.NewRateLimiter(cfg.CreatesPerMinute, time.Minute)
	}
	if l.Logins == nil {
		l.Logins = policy.NewAuthBackoff(cfg.AuthFailures, policy.LoginWindow, policy.LoginBackoff, policy.LoginMaxBackoff)
	}
	if l.Sessions == nil {
		l.Sessions = policy.NewSessionCounter(cfg.MaxSessions, cfg.MaxSessionsPerClient)
	}
	return l
}

// clientKey is the key of the client at addr in the per-client limits.
func (s *Server) clientKey(addr string) string { return s.cfg.ClientPrefix.Key(addr) }

// allowCreate counts a credential creation by the client at addr; a refusal
// is a 429 with Retry-After.
func (s *Server) allowCreate(ctx context.Context, w http.ResponseWriter, addr string) error {
	err := s.limits.Creates.Allow(ctx, s.clientKey(addr))
	var refused *policy.RateLimitError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &refused):
		retry := retryAfter(refused.RetryAfter)
		w.Header().Set("Retry-After", retry)
		return &requestError{http.StatusTooManyRequests, "Too many requests from your address, try again in " + retry + " s"}
	}
	s.log.Error("create rate limit unavailable", "err", err)
	return &requestError{http.StatusServiceUnavailable, "Service unavailable, try again later"}
}

// connectClient counts a new socket of the client at addr against the
// session limits (terminal.Config.Connect): a socket holds its slot from
// its connection on, whether it starts a session or not, until its
// terminal ends and calls release.
func (s *Server) connectClient(addr string) (release func(), err error) {
	ctx, cancel := context.WithTimeout(context.Background(), limitTimeout)
	defer cancel()
	return s.limits.Sessions.Acquire(ctx, s.clientKey(addr))
}

// admit applies the login back-off to a terminal of the client at addr
// before it dials target. On success the caller reports the dial's result
// with endLogin.
func (s *Server) admit(ctx context.Context, addr string, target sshbridge.Target) (policy.Attempt, error) {
	return s.limits.Logins.Reserve(ctx, policy.Login{Client: s.clientKey(addr), Account: target.User + "@" + target.Addr()})
}

// dialOutcome is what sshbridge.Dial's error says about the credentials.
func dialOutcome(err error) policy.Outcome {
	switch {
	case err == nil, errors.Is(err, sshbridge.ErrSession):
		return policy.Succeeded // the server accepted the login
	case errors.Is(err, sshbridge.ErrAuth):
		return policy.Failed
	}
	return policy.Abandoned
}

// endLogin ends a login attempt reserved by admit with o.
func (s *Server) endLogin(login policy.Attempt, o policy.Outcome) {
	ctx, cancel := context.WithTimeout(context.Background(), limitTimeout)
	defer cancel()
	if err := login.Done(ctx, o); err != nil {
		s.log.Error("login limit: outcome not recorded", "err", err)
	}
}
