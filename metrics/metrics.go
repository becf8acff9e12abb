// Package metrics keeps the gateway's Prometheus metrics and serves them.
// The others report to it (HTTP requests, session starts and ends); it
// calls nothing back. Every label takes a value from a fixed set declared
// here, never one a user controls: an unknown value is counted as "other"
// (routes) or "error" (results, reasons).
//
// Concurrency: a Metrics is safe for concurrent use; counting is a few
// atomic operations, with no lock on the terminal output path (byte
// counts are read from the caller's own counters at scrape time).
package metrics

import (
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

const namespace = "alfresco_ssh"

// Results of a session start, the values of the label result of
// alfresco_ssh_sessions_started_total.
const (
	ResultOK                 = "ok"
	ResultAuthFailed         = "auth_failed"
	ResultConnectFailed      = "connect_failed"
	ResultHostKeyRejected    = "host_key_rejected"
	ResultDenied             = "denied"
	ResultInvalidCredentials = "invalid_credentials"
	ResultError              = "error"
)

// Results lists every result.
var Results = []string{ResultOK, ResultAuthFailed, ResultConnectFailed, ResultHostKeyRejected,
	ResultDenied, ResultInvalidCredentials, ResultError}

// Reasons a started session ended, the values of the label reason of
// alfresco_ssh_sessions_ended_total (the classification of package
// terminal).
const (
	ReasonExit       = "exit"            // the remote shell ended
	ReasonClientGone = "client_gone"     // the browser went away
	ReasonIdle       = "idle"            // the page's timeout or --idle-timeout
	ReasonLifetime   = "lifetime"        // --max-session-duration
	ReasonLost       = "connection_lost" // the SSH connection failed or stopped answering
	ReasonKilled     = "killed"          // ended by an administrator
	ReasonShutdown   = "shutdown"        // the gateway stopped (after draining)
	ReasonError      = "error"
)

// Reasons lists every reason.
var Reasons = []string{ReasonExit, ReasonClientGone, ReasonIdle, ReasonLifetime,
	ReasonLost, ReasonKilled, ReasonShutdown, ReasonError}

// Routes are the values of the label route of
// alfresco_ssh_http_requests_total.
var Routes = []string{"create_credentials", "create_session", "page", "page_gen1", "static",
	"socket_io", "livez", "readyz", "healthz", "admin", "files", "other"}

// Metrics are the gateway's metrics in a registry of their own.
type Metrics struct {
	reg      *prometheus.Registry
	active   prometheus.Gauge
	started  *prometheus.CounterVec
	ended    *prometheus.CounterVec
	connect  prometheus.Histogram
	requests *prometheus.CounterVec
}

// New returns the metrics of a gateway of the given version, with the Go
// runtime and process collectors.
func New(version string) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		active: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "sessions_active",
			Help: "Terminal sessions running on this node.",
		}),
		started: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "sessions_started_total",
			Help: "Session starts (start-session events) by result.",
		}, []string{"result"}),
		ended: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "sessions_ended_total",
			Help: "Sessions that had started and ended, by reason.",
		}, []string{"reason"}),
		connect: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Name: "ssh_connect_seconds",
			Help:    "Time of the SSH dial (TCP, SSH handshake, login, PTY, shell) of the sessions that started.",
			Buckets: []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30},
		}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "http_requests_total",
			Help: "HTTP requests by route (a fixed set of names) and status code.",
		}, []string{"route", "code"}),
	}
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: namespace, Name: "build_info",
		Help:        "Always 1; the label says the gateway's version.",
		ConstLabels: prometheus.Labels{"version": version},
	})
	build.Set(1)
	for _, r := range Results {
		m.started.WithLabelValues(r)
	}
	for _, r := range Reasons {
		m.ended.WithLabelValues(r)
	}
	m.reg.MustRegister(m.active, m.started, m.ended, m.connect, m.requests, build,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the metrics in the Prometheus text format (or what the
// scraper negotiates).
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Request counts one HTTP request.
func (m *Metrics) Request(route string, code int) {
	m.requests.WithLabelValues(oneOf(route, Routes, "other"), strconv.Itoa(code)).Inc()
}

// SessionStarted counts a session start with its result; connect is how
// long an ok start took to reach a ready shell. An ok start is active
// until SessionEnded.
func (m *Metrics) SessionStarted(result string, connect time.Duration) {
	result = oneOf(result, Results, ResultError)
	m.started.WithLabelValues(result).Inc()
	if result == ResultOK {
		m.active.Inc()
		m.connect.Observe(connect.Seconds())
	}
}

// SessionEnded counts the end of a session that had started ok.
func (m *Metrics) SessionEnded(reason string) {
	m.ended.WithLabelValues(oneOf(reason, Reasons, ReasonError)).Inc()
	m.active.Dec()
}

// CountBytes exports terminal bytes from the browsers (in) and to them
// (out), read from the caller's counters at each scrape.
func (m *Metrics) CountBytes(in, out func() uint64) {
	for dir, f := range map[string]func() uint64{"in": in, "out": out} {
		m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: namespace, Name: "terminal_bytes_total",
			Help:        "Terminal bytes relayed: in from the browsers to the shells, out from the shells to the browsers.",
			ConstLabels: prometheus.Labels{"direction": dir},
		}, func() float64 { return float64(f()) }))
	}
}

// CountPending exports the number of credentials waiting to be used,
// read at each scrape.
func (m *Metrics) CountPending(pending func() int) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: namespace, Name: "credentials_pending",
		Help: "Credentials created and waiting to be used (this node's memory store).",
	}, func() float64 { return float64(pending()) }))
}

func oneOf(v string, set []string, otherwise string) string {
	if slices.Contains(set, v) {
		return v
	}
	return otherwise
}
