package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// clientsEnv makes this binary the scale mode's mass of clients: terminals
// opened through the gateway with the Go Socket.IO client, as many as the
// parent asks for, in a process of their own so that their work does not
// share a Go runtime with the sessions whose echo the parent measures.
const clientsEnv = "ALFRESCO_BENCH_CLIENTS"

type clientsConfig struct {
	GatewayURL  string        `json:"gateway_url"`
	Host        string        `json:"host"`
	Port        int           `json:"port"`
	User        string        `json:"user"`
	Password    string        `json:"password"`
	OpenTimeout time.Duration `json:"open_timeout"`
}

// Answers of the clients process, one type per request.
type (
	// openReply answers "open": N more terminals, at most InFlight opening
	// at a time, each at its prompt.
	openReply struct {
		Opened  int      `json:"opened"`
		Failed  int      `json:"failed"`
		Seconds float64  `json:"seconds"`
		Errors  []string `json:"errors,omitempty"`
	}
	// printReply answers "print": N terminals print at Rate bytes a second
	// each (0: as fast as they can); it comes once all of them do.
	printReply struct {
		Printing int `json:"printing"`
	}
	// quietReply answers "quiet": the printing terminals stop and are back
	// at their prompts. Bytes were received while they printed.
	quietReply struct {
		Bytes   int64   `json:"bytes"`
		Seconds float64 `json:"seconds"`
	}
	// checkReply answers "check": terminals still open, and why the
	// others ended.
	checkReply struct {
		Live      int      `json:"live"`
		Ended     int      `json:"ended"`
		Reasons   []string `json:"reasons,omitempty"`
		LostOpens int64    `json:"lost_opens"`
	}
)

// clientPool is the clients process's state; requests come one at a time.
type clientPool struct {
	cfg   clientsConfig
	terms []*gatewayTerminal

	printing   []*gatewayTerminal
	printed    []atomic.Int64 // bytes received, per printing terminal
	printStart time.Time
}

func clientsMain(raw string) int {
	p := &clientPool{}
	if err := json.Unmarshal([]byte(raw), &p.cfg); err != nil {
		fmt.Fprintln(os.Stderr, "bench clients: bad config:", err)
		return 2
	}
	defer func() { closeAll(p.all()) }()
	if err := serveCtl(map[string]bool{"ready": true}, p.handle); err != nil {
		fmt.Fprintln(os.Stderr, "bench clients:", err)
		return 1
	}
	return 0
}

func (p *clientPool) all() []terminal {
	out := make([]terminal, len(p.terms))
	for i, t := range p.terms {
		out[i] = t
	}
	return out
}

func (p *clientPool) handle(req ctlRequest) (any, error) {
	ctx := context.Background()
	switch req.Op {
	case "open":
		return p.open(ctx, req.N, max(1, req.InFlight)), nil
	case "print":
		return p.print(ctx, req.N, req.Rate)
	case "quiet":
		return p.quiet(ctx)
	case "check":
		return p.check(), nil
	case "close":
		closeAll(p.all())
		p.terms = nil
		return map[string]int{}, nil
	}
	return nil, fmt.Errorf("unknown request %q", req.Op)
}

func (p *clientPool) open(ctx context.Context, n, inFlight int) openReply {
	l := login{host: p.cfg.Host, port: p.cfg.Port, user: p.cfg.User, password: p.cfg.Password}
	start := time.Now()
	terms, _, errs := openMany(ctx, n, inFlight, p.cfg.OpenTimeout, func(ctx context.Context) (terminal, error) {
		return openGateway(ctx, p.cfg.GatewayURL, l, p.cfg.OpenTimeout)
	})
	r := openReply{Failed: len(errs), Seconds: time.Since(start).Seconds(), Errors: errorStrings(errs)}
	// A browser does not keep its credentials POST's connection open.
	httpClient.CloseIdleConnections()
	for _, t := range terms {
		if t != nil {
			p.terms = append(p.terms, t.(*gatewayTerminal))
			r.Opened++
		}
	}
	return r
}

func (p *clientPool) print(ctx context.Context, n, rate int) (printReply, error) {
	if len(p.printing) > 0 || n > len(p.terms) {
		return printReply{}, fmt.Errorf("print %d: %d terminals open, %d printing already", n, len(p.terms), len(p.printing))
	}
	p.printing, p.printed, p.printStart = p.terms[:n], make([]atomic.Int64, n), time.Now()
	for i, t := range p.printing {
		t.out.setTap(func(b []byte, _ time.Time) ([]byte, bool) {
			p.printed[i].Add(int64(len(b)))
			return nil, false
		})
		if err := t.send(fmt.Sprintf("stream %d\r", rate)); err != nil {
			return printReply{}, err
		}
	}
	// Under way once each has printed more than the echo of its command.
	deadline := time.Now().Add(keyTimeout)
	for i := range p.printing {
		for p.printed[i].Load() < 1000 {
			if time.Now().After(deadline) {
				return printReply{}, fmt.Errorf("terminal %d of %d printing did not start printing within %v", i, n, keyTimeout)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return printReply{Printing: n}, nil
}

func (p *clientPool) quiet(ctx context.Context) (quietReply, error) {
	var r quietReply
	for i := range p.printed {
		r.Bytes += p.printed[i].Load()
	}
	r.Seconds = time.Since(p.printStart).Seconds()
	var wg sync.WaitGroup
	errs := make([]error, len(p.printing))
	for i, t := range p.printing {
		wg.Go(func() {
			t.out.clearTap()
			t.out.discard()
			// Any key stops the stream (the shell drops it) and brings
			// the prompt back; the streamed text never holds the prompt.
			if errs[i] = t.send("x"); errs[i] == nil {
				_, errs[i] = t.out.waitForString(ctx, keyTimeout, prompt)
			}
		})
	}
	wg.Wait()
	p.printing, p.printed = nil, nil
	for _, err := range errs {
		if err != nil {
			return r, err
		}
	}
	return r, nil
}

func (p *clientPool) check() checkReply {
	var r checkReply
	var ended []error
	for _, t := range p.terms {
		select {
		case <-t.gone:
			t.mu.Lock()
			ended = append(ended, fmt.Errorf("ended at %s: reason %q, closing %v", t.goneAt.Format("15:04:05.000"), t.reason, t.closing))
			t.mu.Unlock()
		default:
			r.Live++
		}
	}
	r.Ended, r.Reasons, r.LostOpens = len(ended), errorStrings(ended), lostOpens.Load()
	return r
}
