package policy

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/alfresco-ssh/alfresco-ssh/internal/fakeclock"
)

// backoffStep advances the clock, then acts on login:
//   - "fail", "ok": a whole attempt that fails or succeeds (Reserve must
//     accept it);
//   - "reserve": an attempt left in flight, remembered as name;
//   - "failed", "succeeded", "abandoned": ends the attempt called name;
//   - "check": Reserve must answer want: nil (accepted; the attempt is
//     abandoned at once), a *LoginRefusedError, or errWouldWait.
type backoffStep struct {
	advance time.Duration
	op      string
	login   Login
	name    string
	want    error
}

// errWouldWait is what a check's Reserve returns when it would wait for an
// attempt in flight: the cause of its context, cancelled from the start.
var errWouldWait = errors.New("would wait for an attempt in flight")

var (
	loginCA = Login{Client: "c", Account: "u@a:22"}
	loginCB = Login{Client: "c", Account: "u@b:22"}
	loginDA = Login{Client: "d", Account: "u@a:22"}
)

// runBackoff plays steps on b, whose clock is clock.
func runBackoff(t *testing.T, b *AuthBackoff, clock *fakeclock.Clock, steps []backoffStep) {
	t.Helper()
	ctx, cancel := context.WithCancelCause(t.Context())
	cancel(errWouldWait) // no step may wait
	held := map[string]Attempt{}
	for i, s := range steps {
		clock.Advance(s.advance)
		switch s.op {
		case "fail", "ok", "reserve", "check":
			a, err := b.Reserve(ctx, s.login)
			if s.op == "check" {
				if !sameRefusal(err, s.want) {
					t.Fatalf("step %d: Reserve(%v) = %v; want %v", i, s.login, err, s.want)
				}
				if a != nil {
					a.Done(ctx, Abandoned)
				}
				continue
			}
			if err != nil {
				t.Fatalf("step %d (%s): Reserve(%v) = %v; want it accepted", i, s.op, s.login, err)
			}
			switch s.op {
			case "fail":
				a.Done(ctx, Failed)
			case "ok":
				a.Done(ctx, Succeeded)
			default:
				held[s.name] = a
			}
		case "failed", "succeeded", "abandoned":
			a := held[s.name]
			if a == nil {
				t.Fatalf("step %d: no attempt %q in flight", i, s.name)
			}
			a.Done(ctx, map[string]Outcome{"failed": Failed, "succeeded": Succeeded, "abandoned": Abandoned}[s.op])
		default:
			t.Fatalf("step %d: unknown op %q", i, s.op)
		}
	}
}

// runBackoffLimit plays steps on a back-off of limit failures a minute,
// blocking for a second, doubling up to a minute.
func runBackoffLimit(t *testing.T, limit int, steps []backoffStep) {
	t.Helper()
	clock := fakeclock.New()
	b := NewAuthBackoff(limit, time.Minute, time.Second, time.Minute)
	b.Now = clock.Now
	runBackoff(t, b, clock, steps)
}

// sameRefusal reports whether err is want: nil, or the same refusal.
func sameRefusal(err, want error) bool {
	got, ok := err.(*LoginRefusedError)
	refusal, wantRefusal := want.(*LoginRefusedError)
	if ok && wantRefusal {
		return *got == *refusal
	}
	return err == want
}

func TestAuthBackoff(t *testing.T) {
	fail := backoffStep{op: "fail", login: loginCA}
	free := backoffStep{op: "check", login: loginCA}
	// The client is checked first, so a login whose client and account are
	// both blocked reads as a client refusal.
	blockedFor := func(d time.Duration) backoffStep {
		return backoffStep{op: "check", login: loginCA, want: &LoginRefusedError{RetryAfter: d}}
	}
	after := func(d time.Duration, s backoffStep) backoffStep { s.advance = d; return s }

	type config struct {
		limit                    int
		window, base, maxBackoff time.Duration
	}
	std := config{limit: 3, window: time.Minute, base: time.Second, maxBackoff: 8 * time.Second}
	tests := []struct {
		name  string
		cfg   config
		steps []backoffStep
	}{
		{
			name: "blocks exactly at limit", cfg: std,
			steps: []backoffStep{
				free, fail, free, fail, free, fail,
				blockedFor(time.Second),
				after(time.Second-1, blockedFor(1)),
				after(1, free),
			},
		},
		{
			name: "back-off doubles and is capped", cfg: std,
			steps: []backoffStep{
				fail, fail, fail, blockedFor(time.Second),
				after(time.Second, fail), blockedFor(2 * time.Second),
				after(2*time.Second, fail), blockedFor(4 * time.Second),
				after(4*time.Second, fail), blockedFor(8 * time.Second),
				after(8*time.Second, fail), blockedFor(8 * time.Second),
				after(8*time.Second, fail), blockedFor(8 * time.Second),
			},
		},
		{
			name: "success forgets its own failures", cfg: std,
			steps: []backoffStep{
				fail, fail, {op: "ok", login: loginCA}, free,
				fail, fail, free, fail, blockedFor(time.Second),
			},
		},
		{
			name: "an abandoned attempt counts nothing", cfg: std,
			steps: []backoffStep{
				fail, fail,
				{op: "reserve", login: loginCA, name: "x"}, {op: "abandoned", name: "x"},
				free, fail, blockedFor(time.Second),
			},
		},
		{
			name: "failures older than window are forgotten", cfg: std,
			steps: []backoffStep{
				fail, fail,
				after(time.Minute, fail), free, fail, free, fail, blockedFor(time.Second),
			},
		},
		{
			name: "failures within window count", cfg: std,
			steps: []backoffStep{
				fail, fail,
				after(time.Minute-1, fail), blockedFor(time.Second),
			},
		},
		{
			name: "clients and accounts are independent", cfg: std,
			steps: []backoffStep{
				fail, fail, fail, blockedFor(time.Second),
				{op: "check", login: Login{Client: "d", Account: "u@b:22"}},
				{op: "fail", login: Login{Client: "d", Account: "u@b:22"}},
				{op: "ok", login: Login{Client: "d", Account: "u@b:22"}},
				blockedFor(time.Second),
			},
		},
		{
			// A back-off longer than window still escalates, and the key
			// is forgotten after a quiet window once the block ends.
			name: "back-off longer than window",
			cfg:  config{limit: 2, window: 10 * time.Second, base: 8 * time.Second, maxBackoff: time.Minute},
			steps: []backoffStep{
				fail, fail, blockedFor(8 * time.Second),
				after(8*time.Second, fail), blockedFor(16 * time.Second),
				after(16*time.Second, fail), blockedFor(32 * time.Second),
				after(32*time.Second, fail), blockedFor(time.Minute),
				after(time.Minute+10*time.Second-1, fail), blockedFor(time.Minute),
				after(time.Minute+10*time.Second, fail), free,
				fail, blockedFor(8 * time.Second),
			},
		},
		{
			name: "max backoff below base is base",
			cfg:  config{limit: 1, window: time.Minute, base: 5 * time.Second, maxBackoff: time.Second},
			steps: []backoffStep{
				fail, blockedFor(5 * time.Second),
				after(5*time.Second, fail), blockedFor(5 * time.Second),
			},
		},
		{
			name:  "limit zero disables",
			cfg:   config{limit: 0, window: time.Minute, base: time.Second, maxBackoff: time.Minute},
			steps: concatN(repeatN(100, fail), []backoffStep{free}),
		},
		{
			name:  "window zero disables",
			cfg:   config{limit: 1, window: 0, base: time.Second, maxBackoff: time.Minute},
			steps: concatN(repeatN(100, fail), []backoffStep{free}),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := fakeclock.New()
			b := NewAuthBackoff(tt.cfg.limit, tt.cfg.window, tt.cfg.base, tt.cfg.maxBackoff)
			b.Now = clock.Now
			runBackoff(t, b, clock, tt.steps)
		})
	}
}

// TestAuthBackoffInFlight checks that attempts in flight count: no more are
// reserved than could fail before a block; the next one waits.
func TestAuthBackoffInFlight(t *testing.T) {
	busy := errWouldWait
	blocked := &LoginRefusedError{RetryAfter: time.Second}
	reserve := func(name string, l Login) backoffStep { return backoffStep{op: "reserve", login: l, name: name} }
	end := func(op, name string) backoffStep { return backoffStep{op: op, name: name} }
	check := func(l Login, want error) backoffStep {
		return backoffStep{op: "check", login: l, want: want}
	}
	tests := []struct {
		name  string
		steps []backoffStep
	}{
		{
			name: "limit in flight, then busy",
			steps: []backoffStep{
				reserve("1", loginCA), reserve("2", loginCA),
				check(loginCA, busy), check(loginCB, busy), check(loginDA, busy),
				end("failed", "1"),
				check(loginCA, busy), // one failure and one in flight: no room
				end("failed", "2"),
				check(loginCA, blocked), check(loginCB, blocked),
				check(loginDA, &LoginRefusedError{Account: true, RetryAfter: time.Second}),
			},
		},
		{
			name: "room comes back when an attempt ends",
			steps: []backoffStep{
				reserve("1", loginCA), reserve("2", loginCB), check(loginCA, busy),
				end("abandoned", "1"), reserve("3", loginCA), check(loginCA, busy),
				end("succeeded", "2"), check(loginCA, nil),
				end("failed", "3"), check(loginCB, nil), reserve("4", loginCB), check(loginCB, busy),
			},
		},
		{
			name: "one attempt at a time after a block",
			steps: []backoffStep{
				reserve("1", loginCA), reserve("2", loginCA), end("failed", "1"), end("failed", "2"),
				check(loginCA, blocked),
				{advance: time.Second, op: "reserve", login: loginCA, name: "3"},
				check(loginCA, busy),
				end("failed", "3"),
				check(loginCA, &LoginRefusedError{RetryAfter: 2 * time.Second}),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { runBackoffLimit(t, 2, tt.steps) })
	}
}

// TestAuthBackoffWaits checks how a Reserve that waits for the attempts in
// flight ends: it reserves when one ends, is refused when they block the
// login, and gives up with its context.
func TestAuthBackoffWaits(t *testing.T) {
	type outcome struct {
		a   Attempt
		err error
	}
	tests := []struct {
		name string
		end  func(a1, a2 Attempt, cancel context.CancelCauseFunc)
		want func(o outcome) bool
	}{
		{
			name: "an attempt succeeds",
			end:  func(a1, _ Attempt, _ context.CancelCauseFunc) { a1.Done(context.Background(), Succeeded) },
			want: func(o outcome) bool { return o.err == nil && o.a != nil },
		},
		{
			name: "an attempt is abandoned",
			end:  func(_, a2 Attempt, _ context.CancelCauseFunc) { a2.Done(context.Background(), Abandoned) },
			want: func(o outcome) bool { return o.err == nil && o.a != nil },
		},
		{
			name: "both fail",
			end: func(a1, a2 Attempt, _ context.CancelCauseFunc) {
				a1.Done(context.Background(), Failed)
				a2.Done(context.Background(), Failed)
			},
			want: func(o outcome) bool { return sameRefusal(o.err, &LoginRefusedError{RetryAfter: time.Second}) },
		},
		{
			name: "the client leaves",
			end:  func(_, _ Attempt, cancel context.CancelCauseFunc) { cancel(errWouldWait) },
			want: func(o outcome) bool { return o.err == errWouldWait && o.a == nil },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := NewAuthBackoff(2, time.Minute, time.Second, time.Minute)
				a1, err1 := b.Reserve(t.Context(), loginCA)
				a2, err2 := b.Reserve(t.Context(), loginCA)
				if err1 != nil || err2 != nil {
					t.Fatal(err1, err2)
				}
				ctx, cancel := context.WithCancelCause(t.Context())
				done := make(chan outcome, 1)
				go func() {
					a, err := b.Reserve(ctx, loginCA)
					done <- outcome{a, err}
				}()
				synctest.Wait()
				select {
				case o := <-done:
					t.Fatalf("third Reserve returned %v, %v while two attempts were in flight; want it waiting", o.a, o.err)
				default:
				}
				tt.end(a1, a2, cancel)
				o := <-done
				if !tt.want(o) {
					t.Errorf("third Reserve = %v, %v", o.a, o.err)
				}
			})
		})
	}
}

// TestAuthBackoffSuccessProvesOnlyItsPair checks that a success forgets the
// failures of its own client on its own account, and nothing else.
func TestAuthBackoffSuccessProvesOnlyItsPair(t *testing.T) {
	fail := func(l Login) backoffStep { return backoffStep{op: "fail", login: l} }
	ok := func(l Login) backoffStep { return backoffStep{op: "ok", login: l} }
	check := func(l Login, want error) backoffStep {
		return backoffStep{op: "check", login: l, want: want}
	}
	own := Login{Client: "c", Account: "own@mine:22"}
	tests := []struct {
		name  string
		steps []backoffStep
	}{
		{
			// The old behaviour: a login to one's own account erased the
			// client's whole record, so guessing could go on forever.
			name: "a success elsewhere keeps the client's failures",
			steps: []backoffStep{
				fail(loginCA), fail(own), ok(own),
				fail(loginCB), fail(loginCA),
				check(loginCB, &LoginRefusedError{RetryAfter: time.Second}),
			},
		},
		{
			name: "another client's success keeps the account's failures",
			steps: []backoffStep{
				fail(loginCA), fail(loginCA), ok(loginDA),
				fail(Login{Client: "e", Account: loginCA.Account}),
				check(Login{Client: "f", Account: loginCA.Account}, &LoginRefusedError{Account: true, RetryAfter: time.Second}),
			},
		},
		{
			name: "the pair's own success forgets them on both sides",
			steps: []backoffStep{
				fail(loginCA), fail(loginCA), ok(loginCA),
				fail(loginDA), fail(loginDA), check(Login{Client: "e", Account: loginCA.Account}, nil),
				fail(loginCB), fail(loginCB), check(loginCB, nil),
				fail(loginCB), check(loginCA, &LoginRefusedError{RetryAfter: time.Second}),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { runBackoffLimit(t, 3, tt.steps) })
	}
}

// TestAuthBackoffAccounts checks that wrong passwords for one user lock
// neither the host's other users nor other clients out of theirs.
func TestAuthBackoffAccounts(t *testing.T) {
	victim := Login{Client: "attacker-2", Account: "alice@host:22"}
	runBackoffLimit(t, 2, []backoffStep{
		{op: "fail", login: Login{Client: "attacker-1", Account: "alice@host:22"}},
		{op: "fail", login: victim},
		{op: "check", login: Login{Client: "alice", Account: "alice@host:22"}, want: &LoginRefusedError{Account: true, RetryAfter: time.Second}},
		{op: "check", login: Login{Client: "bob", Account: "bob@host:22"}},
		{op: "check", login: Login{Client: "alice", Account: "alice@host:2222"}},
		{op: "check", login: Login{Client: "attacker-1", Account: "bob@host:22"}},
	})
}

func TestAuthBackoffDoneTwice(t *testing.T) {
	ctx := t.Context()
	b := NewAuthBackoff(2, time.Minute, time.Second, time.Minute)
	a, err := b.Reserve(ctx, loginCA)
	if err != nil {
		t.Fatal(err)
	}
	a.Done(ctx, Failed)
	a.Done(ctx, Failed)
	a.Done(ctx, Succeeded)
	if got := len(b.clients["c"].failures); got != 1 || b.clients["c"].inFlight != 0 {
		t.Fatalf("after Done three times: %d failures, %d in flight; want 1 and 0", got, b.clients["c"].inFlight)
	}
}

func TestAuthBackoffSweepBoundsMemory(t *testing.T) {
	ctx := t.Context()
	clock := fakeclock.New()
	b := NewAuthBackoff(3, time.Minute, time.Second, time.Hour)
	b.Now = clock.Now
	const keys = 10_000
	for i := range keys {
		a, err := b.Reserve(ctx, Login{Client: fmt.Sprint("client-", i), Account: fmt.Sprint("u@host-", i, ":22")})
		if err != nil {
			t.Fatal(err)
		}
		a.Done(ctx, Failed)
	}
	blocked := Login{Client: "blocked", Account: "u@blocked:22"}
	for range 3 {
		a, _ := b.Reserve(ctx, blocked)
		a.Done(ctx, Failed)
	}
	inFlight, err := b.Reserve(ctx, Login{Client: "slow", Account: "u@slow:22"})
	if err != nil {
		t.Fatal(err)
	}
	if got := len(b.clients) + len(b.accounts); got != 2*(keys+2) {
		t.Fatalf("tracked keys = %d, want %d", got, 2*(keys+2))
	}
	clock.Advance(time.Minute)
	// Sweeps: the keys whose block ended less than a window ago are kept,
	// and so are those with an attempt in flight.
	probe, err := b.Reserve(ctx, blocked)
	if err != nil {
		t.Fatalf("Reserve(blocked) after the block: %v", err)
	}
	if got := len(b.clients) + len(b.accounts); got != 4 {
		t.Fatalf("tracked keys after the sweep = %d, want 4", got)
	}
	probe.Done(ctx, Failed)
	if _, err := b.Reserve(ctx, blocked); !sameRefusal(err, &LoginRefusedError{RetryAfter: 2 * time.Second}) {
		t.Fatalf("Reserve(blocked) after one more failure = %v, want blocked for 2s", err)
	}
	inFlight.Done(ctx, Failed)
	if got := len(b.clients["slow"].failures); got != 1 {
		t.Fatalf("failures of the attempt in flight across the sweep = %d, want 1", got)
	}
}

func TestAuthBackoffConcurrent(t *testing.T) {
	ctx := t.Context()
	clock := fakeclock.New()
	b := NewAuthBackoff(3, time.Minute, time.Second, 8*time.Second)
	b.Now = clock.Now
	var reserved atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range 100 {
		wg.Go(func() {
			<-start
			// Every client guesses the same account; each also logs in to
			// its own.
			a, err := b.Reserve(ctx, Login{Client: fmt.Sprint("client-", i%10), Account: "victim@target:22"})
			if err == nil {
				reserved.Add(1)
				a.Done(ctx, Failed)
			}
			if a, err := b.Reserve(ctx, Login{Client: fmt.Sprint("client-", i), Account: fmt.Sprint("own-", i, "@target:22")}); err == nil {
				a.Done(ctx, Succeeded)
			}
		})
	}
	close(start)
	wg.Wait()
	if got := reserved.Load(); got != 3 {
		t.Fatalf("attempts on the account reserved = %d of 100, want 3 (the limit)", got)
	}
	if _, err := b.Reserve(ctx, Login{Client: "new", Account: "victim@target:22"}); !sameRefusal(err, &LoginRefusedError{Account: true, RetryAfter: time.Second}) {
		t.Fatalf("Reserve after 3 failures = %v, want the account blocked for 1s", err)
	}
}

func TestLoginRefusedErrorText(t *testing.T) {
	tests := []struct {
		err  LoginRefusedError
		want string
	}{
		{LoginRefusedError{RetryAfter: 30 * time.Second}, "too many failed logins from your address; try again in 30 s"},
		{LoginRefusedError{Account: true, RetryAfter: 1500 * time.Millisecond}, "too many failed logins for this user on this host; try again in 2 s"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("got %q, want %q", got, tt.want)
		}
	}
}
