package policy

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// LoginLimit is the back-off on failed SSH logins, per client and per
// account. An attempt is reserved before the dial and its outcome reported
// on the reservation after it, so attempts in flight count: however many
// logins a client starts at once, no more reach SSH servers than could
// fail before a block.
type LoginLimit interface {
	// Reserve reserves an attempt of l before it dials. It refuses with a
	// *LoginRefusedError while l's client or account is blocked. While
	// either has as many attempts in flight as failures could still happen
	// before a block, it waits for one of them to end, or for ctx to end
	// (then it returns context.Cause(ctx)). Any other error means the
	// limit could not be checked (its store is unreachable) and the caller
	// refuses the login. The caller must end a reserved attempt with Done.
	// (An implementation shared by several nodes lets a reservation
	// expire, after the longest possible login, in case its node dies.)
	Reserve(ctx context.Context, l Login) (Attempt, error)
}

// Login names one SSH login attempt: who tries, and on what.
type Login struct {
	// Client is the client's key (ClientPrefix.Key).
	Client string
	// Account is the account tried: user and target, "user@host:port".
	Account string
}

// Attempt is a reserved login attempt.
type Attempt interface {
	// Done ends the attempt with its outcome. Calls after the first do
	// nothing. An error means the outcome could not be recorded.
	Done(ctx context.Context, o Outcome) error
}

// Outcome is how a login attempt ended.
type Outcome int

const (
	// Abandoned: no verdict on the credentials (the host was unreachable,
	// the handshake failed, the attempt was cancelled or never dialled).
	Abandoned Outcome = iota
	// Failed: the SSH server refused the credentials.
	Failed
	// Succeeded: the SSH server accepted the credentials.
	Succeeded
)

// LoginRefusedError is a refusal by a LoginLimit.
type LoginRefusedError struct {
	// Account is true when the account is refused, false when the client
	// is.
	Account bool
	// RetryAfter is how long the block lasts.
	RetryAfter time.Duration
}

func (e *LoginRefusedError) Error() string {
	who := "from your address"
	if e.Account {
		who = "for this user on this host"
	}
	return fmt.Sprintf("too many failed logins %s; try again in %d s", who, seconds(e.RetryAfter))
}

// The gateway's login back-off (--auth-failures is the limit): a block
// after the limit's failures within LoginWindow, for LoginBackoff, doubled
// for each further failure up to LoginMaxBackoff. The in-memory back-off
// and the one shared through Redis both run with these.
const (
	LoginWindow     = 10 * time.Minute
	LoginBackoff    = 30 * time.Second
	LoginMaxBackoff = 15 * time.Minute
)

// AuthBackoff is the in-memory LoginLimit. It counts failed logins per
// client and per account. After limit failures within window a client or
// account is blocked for base; each further failure blocks it again for
// twice as long as the one before (base, 2*base, 4*base, ...) up to
// maxBackoff. While not blocked, a client or account may have as many
// attempts in flight as failures it can still take before a block (limit
// minus its recent failures, at least one); further attempts wait.
//
// A failure is forgotten once it is older than window, except that a
// client or account keeps all its failures until window has passed since
// its last block ended, so that back-offs longer than window still
// escalate. A success forgets only what it proves: the failures of the
// same client on the same account, on both sides; the client's failures
// elsewhere, and other clients' failures on the account, stay. (No
// success can end during a block: a record's failures plus its attempts in
// flight never pass limit, so a block starts with none in flight.)
//
// Forgotten keys are swept at most once per window; memory is bounded by
// the clients and accounts that failed recently or have attempts in
// flight, each holding at most limit plus a few failures.
type AuthBackoff struct {
	limit      int // failures that trip a block; 0 when disabled
	window     time.Duration
	base       time.Duration
	maxBackoff time.Duration
	keep       int // failures kept per key: enough to reach maxBackoff
	Now        func() time.Time

	mu       sync.Mutex
	clients  map[string]*loginRecord
	accounts map[string]*loginRecord
	swept    time.Time // last sweep; zero before the first attempt
}

var _ LoginLimit = (*AuthBackoff)(nil)

// loginRecord is the state of one client or one account.
type loginRecord struct {
	failures []failure     // recent failures, oldest first, at most keep
	until    time.Time     // when the current or last block ends
	inFlight int           // reserved attempts not yet done
	ended    chan struct{} // closed when one of them ends; nil if none waits
}

// failure is one failed login, tagged with the other side of the login
// (the account in a client's record, the client in an account's) so that
// a success can forget exactly its own pair's failures.
type failure struct {
	at  time.Time
	tag string
}

// NewAuthBackoff returns a back-off that blocks a client or account after
// limit failures within window. limit <= 0 or window <= 0 disables it:
// Reserve always reserves. A base <= 0 counts as one second and a
// maxBackoff below base as base.
func NewAuthBackoff(limit int, window, base, maxBackoff time.Duration) *AuthBackoff {
	b := &AuthBackoff{window: window, base: base, maxBackoff: maxBackoff, Now: time.Now}
	if limit <= 0 || window <= 0 {
		return b
	}
	b.limit = limit
	if b.base <= 0 {
		b.base = time.Second
	}
	b.maxBackoff = max(b.maxBackoff, b.base)
	b.keep = FailuresKept(limit, b.base, b.maxBackoff)
	b.clients = make(map[string]*loginRecord)
	b.accounts = make(map[string]*loginRecord)
	return b
}

// Reserve implements LoginLimit; it returns no error but a
// *LoginRefusedError or ctx's cause. The client is checked first.
func (b *AuthBackoff) Reserve(ctx context.Context, l Login) (Attempt, error) {
	if b.limit == 0 {
		return noAttempt{}, nil
	}
	for {
		a, wait, err := b.tryReserve(l)
		if wait == nil {
			return a, err
		}
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	}
}

// tryReserve reserves an attempt of l, or refuses it, or returns a channel
// closed when an attempt in flight that stands in its way ends.
func (b *AuthBackoff) tryReserve(l Login) (a Attempt, wait <-chan struct{}, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.Now()
	if b.swept.IsZero() {
		b.swept = now // the first attempt starts the sweep schedule
	}
	if now.Sub(b.swept) >= b.window {
		b.sweep(now)
	}
	client, account := b.clients[l.Client], b.accounts[l.Account]
	if retry := b.blocked(client, now); retry > 0 {
		return nil, nil, &LoginRefusedError{RetryAfter: retry}
	}
	if retry := b.blocked(account, now); retry > 0 {
		return nil, nil, &LoginRefusedError{Account: true, RetryAfter: retry}
	}
	for _, r := range []*loginRecord{client, account} {
		if r != nil && r.inFlight >= max(b.limit-len(r.failures), 1) {
			if r.ended == nil {
				r.ended = make(chan struct{})
			}
			return nil, r.ended, nil
		}
	}
	if client == nil {
		client = &loginRecord{}
		b.clients[l.Client] = client
	}
	if account == nil {
		account = &loginRecord{}
		b.accounts[l.Account] = account
	}
	client.inFlight++
	account.inFlight++
	return &attempt{b: b, login: l, client: client, account: account}, nil, nil
}

// blocked returns how much longer r is blocked, or 0, after forgetting
// its old failures. r may be nil (nothing known). b.mu must be held.
func (b *AuthBackoff) blocked(r *loginRecord, now time.Time) time.Duration {
	if r == nil {
		return 0
	}
	if now.Before(r.until) {
		return r.until.Sub(now)
	}
	r.forget(now, b.window)
	return 0
}

// attempt is an AuthBackoff reservation. Its records stay in the maps
// while it is in flight: the sweep keeps records with attempts in flight.
type attempt struct {
	b               *AuthBackoff
	login           Login
	client, account *loginRecord
	done            bool // under b.mu
}

// Done implements Attempt; it never returns an error.
func (a *attempt) Done(_ context.Context, o Outcome) error {
	b := a.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if a.done {
		return nil
	}
	a.done = true
	a.client.end()
	a.account.end()
	switch o {
	case Failed:
		now := b.Now()
		b.fail(a.client, a.login.Account, now)
		b.fail(a.account, a.login.Client, now)
	case Succeeded:
		a.client.forgive(a.login.Account)
		a.account.forgive(a.login.Client)
	}
	return nil
}

// end ends one of r's attempts in flight and wakes those waiting for it.
func (r *loginRecord) end() {
	r.inFlight--
	if r.ended != nil {
		close(r.ended)
		r.ended = nil
	}
}

// fail records a failure tagged tag in r, blocking it once it has limit
// recent failures. b.mu must be held.
func (b *AuthBackoff) fail(r *loginRecord, tag string, now time.Time) {
	r.forget(now, b.window)
	if len(r.failures) == b.keep {
		r.failures = append(r.failures[:0], r.failures[1:]...)
	}
	r.failures = append(r.failures, failure{now, tag})
	if extra := len(r.failures) - b.limit; extra >= 0 {
		d := b.base
		for range extra {
			d = double(d)
		}
		r.until = now.Add(min(d, b.maxBackoff))
	}
}

// forgive forgets r's failures tagged tag.
func (r *loginRecord) forgive(tag string) {
	kept := r.failures[:0]
	for _, f := range r.failures {
		if f.tag != tag {
			kept = append(kept, f)
		}
	}
	clear(r.failures[len(kept):])
	r.failures = kept
}

// sweep removes records with nothing left to remember. b.mu must be held.
func (b *AuthBackoff) sweep(now time.Time) {
	for _, m := range []map[string]*loginRecord{b.clients, b.accounts} {
		for key, r := range m {
			if r.inFlight == 0 && r.forget(now, b.window) {
				delete(m, key)
			}
		}
	}
	b.swept = now
}

// forget drops failures older than window unless a block ended less than
// window ago, and reports whether nothing is left to remember.
func (r *loginRecord) forget(now time.Time, window time.Duration) (empty bool) {
	if now.Sub(r.until) < window {
		return false
	}
	i := 0
	for i < len(r.failures) && now.Sub(r.failures[i].at) >= window {
		i++
	}
	r.failures = append(r.failures[:0], r.failures[i:]...)
	return len(r.failures) == 0
}

// FailuresKept is how many recent failures a client or account keeps:
// limit, and one more for each doubling of base (positive) that stays
// below maxBackoff, so that its blocks escalate all the way.
func FailuresKept(limit int, base, maxBackoff time.Duration) int {
	keep := limit
	for d := base; d < maxBackoff; d = double(d) {
		keep++
	}
	return keep
}

// noAttempt is the attempt of a disabled AuthBackoff.
type noAttempt struct{}

func (noAttempt) Done(context.Context, Outcome) error { return nil }

// double returns 2*d, saturating instead of overflowing.
func double(d time.Duration) time.Duration {
	if d > (1<<63-1)/2 {
		return 1<<63 - 1
	}
	return 2 * d
}
