package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/alfresco-ssh/alfresco-ssh/audit"
	"github.com/alfresco-ssh/alfresco-ssh/credstore"
	"github.com/alfresco-ssh/alfresco-ssh/metrics"
	"github.com/alfresco-ssh/alfresco-ssh/registry"
	"github.com/alfresco-ssh/alfresco-ssh/server"
	"github.com/alfresco-ssh/alfresco-ssh/terminal"
)

// operations are what an operator runs the gateway with besides serving:
// metrics, the audit log, the drain on SIGTERM.
type operations struct {
	log                      *slog.Logger
	metrics                  *metrics.Metrics // nil without --metrics-addr
	audit                    *audit.Log       // nil without --audit-log
	auditObserver            *audit.Observer
	registry                 *registry.Redis // nil unless --admin-token with a Redis store
	stopRegistry             func()          // ends registry.Run and waits for it; safe to call twice
	drainGrace, drainTimeout time.Duration
}

// openOperations opens the metrics and the audit log (on stderr for "-")
// and makes them observers of the terminals in cfg.
func (o *options) openOperations(cfg *server.Config, store server.CredentialStore, log *slog.Logger, stderr io.Writer) (*operations, error) {
	ops := &operations{log: log, drainGrace: min(o.drainGrace, o.drainTimeout), drainTimeout: o.drainTimeout}
	if o.metricsAddr != "" {
		ops.metrics = metrics.New(version)
		cfg.Requests = ops.metrics
		cfg.Observers = append(cfg.Observers, ops.metrics)
		if mem, ok := store.(*credstore.Memory); ok {
			ops.metrics.CountPending(mem.Len)
		}
	}
	if o.auditLog != "" {
		l, err := audit.Open(o.auditLog, stderr)
		if err != nil {
			return nil, fmt.Errorf("--audit-log: %w", err)
		}
		ops.audit = l
		ops.auditObserver = &audit.Observer{Log: l, Logger: log}
		cfg.Observers = append(cfg.Observers, ops.auditObserver)
		cfg.FilesAudit = ops.auditObserver.Transfer
	}
	return ops, nil
}

// openRegistry makes the admin endpoints list and end the sessions of
// every node when the credential store is Redis: each node publishes its
// own there, under its --node-name or else host:port.
func (ops *operations) openRegistry(cfg *server.Config, store server.CredentialStore, addr net.Addr) {
	host, _ := os.Hostname()
	cfg.Node = cmp.Or(cfg.NodeName, net.JoinHostPort(host, strconv.Itoa(addr.(*net.TCPAddr).Port)))
	r, ok := store.(*credstore.Redis)
	if !ok || cfg.AdminToken == "" {
		return
	}
	ops.registry = registry.NewRedis(r.Client(), cfg.Node, ops.log)
	cfg.Admin = ops.registry
	cfg.Observers = append(cfg.Observers, ops.registry)
}

// attach connects the operations to the server's terminals.
func (ops *operations) attach(srv *server.Server) {
	terms := srv.Terminals()
	ops.stopRegistry = func() {}
	if ops.registry != nil {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			ops.registry.Run(ctx, terms)
			close(done)
		}()
		ops.stopRegistry = func() {
			cancel()
			<-done
		}
	}
	if ops.metrics != nil {
		ops.metrics.CountBytes(terms.InputBytes, terms.OutputBytes)
	}
	if ops.auditObserver != nil {
		ops.auditObserver.Terminal = func(id string) (terminal.Info, bool) {
			t, ok := terms.Get(id)
			if !ok {
				return terminal.Info{}, false
			}
			return t.Info(), true
		}
	}
}

// close ends what attach started and closes the audit log.
func (ops *operations) close() {
	if ops.stopRegistry != nil {
		ops.stopRegistry()
	}
	if ops.audit != nil {
		ops.audit.Close()
	}
}

// serveUntilStopped serves until the server fails or a signal (of
// notifySignals) stops it: SIGTERM drains (see drain), a second SIGTERM or
// the end of ctx (SIGINT) stops at once; SIGHUP reopens the audit log.
// Every live terminal gets its closing message before it returns, also
// when serving fails.
func (ops *operations) serveUntilStopped(ctx context.Context, srv *server.Server, sigs <-chan os.Signal, serveErr, metricsErr <-chan error) error {
	var drained chan struct{} // closed when a drain is over; nil before SIGTERM
	endDrain := func() {}     // cuts a drain short and waits for its end
	defer func() { endDrain() }()
	shutdown := func() error {
		endDrain() // before the terminals close: it would take their end for its own
		ops.log.Info("shutting down")
		ops.stopRegistry() // before the store's client closes
		sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		return srv.Shutdown(sctx)
	}
	stop := func() error {
		err := shutdown()
		if serr := <-serveErr; err == nil {
			err = serr
		}
		return err
	}
	for {
		select {
		case err := <-serveErr:
			shutdown()
			return err
		case err := <-metricsErr:
			stop()
			return fmt.Errorf("metrics: %w", err)
		case <-ctx.Done():
			return stop()
		case <-drained:
			return stop()
		case sig := <-sigs:
			switch {
			case sig == syscall.SIGHUP:
				ops.reopenAudit()
			case drained == nil:
				done := make(chan struct{})
				dctx, cancel := context.WithCancel(ctx)
				go func() {
					ops.drain(dctx, srv)
					close(done)
				}()
				drained = done
				endDrain = func() {
					cancel()
					<-done
				}
			default:
				ops.log.Info("second SIGTERM: stopping at once")
				return stop()
			}
		}
	}
}

// notifySignals relays the signals serveUntilStopped acts on (SIGINT
// ends run's context) until stop.
func notifySignals() (sigs <-chan os.Signal, stop func()) {
	c := make(chan os.Signal, 2)
	signal.Notify(c, syscall.SIGTERM, syscall.SIGHUP)
	return c, func() { signal.Stop(c) }
}

// drain is the graceful part of a stop: /readyz turns 503 at once, so that
// the balancer sends no new sessions; start-session is refused after the
// grace; live terminals are told how long they have and run on until
// they end or the drain timeout (from the signal) passes, or ctx ends
// (a stop at once, which logs itself).
func (ops *operations) drain(ctx context.Context, srv *server.Server) {
	start := time.Now()
	deadline := start.Add(ops.drainTimeout)
	terms := srv.Terminals()
	ops.log.Info("draining", "grace", ops.drainGrace, "timeout", ops.drainTimeout, "terminals", len(terms.List()))
	srv.Drain()
	terms.Notice(drainNotice(ops.drainTimeout))
	select {
	case <-time.After(ops.drainGrace):
	case <-ctx.Done():
		return
	}
	terms.Drain()
	if left := time.Until(deadline); ops.drainGrace > 0 && left > 0 {
		terms.Notice(drainNotice(left))
	}
	wctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	err := terms.Wait(wctx)
	switch {
	case ctx.Err() != nil:
	case err == nil:
		ops.log.Info("drained: no terminal left", "after", time.Since(start).Round(time.Millisecond))
	default:
		ops.log.Info("drain timeout: closing the terminals left", "terminals", len(terms.List()))
	}
}

// drainNotice is the yellow line live terminals get while the node drains.
func drainNotice(left time.Duration) string {
	return fmt.Sprintf("The gateway is shutting down: this session will be closed in %d seconds. Save your work.", int(left.Round(time.Second).Seconds()))
}

func (ops *operations) reopenAudit() {
	if ops.audit == nil {
		return
	}
	if err := ops.audit.Reopen(); err != nil {
		ops.log.Error("reopen audit log", "err", err)
		return
	}
	ops.log.Info("audit log reopened")
}
