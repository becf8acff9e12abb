package metrics

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alfresco-ssh/alfresco-ssh/internal/servicetest"
)

func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	res, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: got %d, want 200", res.StatusCode)
	}
	return string(b)
}

// ours returns the samples of the gateway's own metrics, the Go and
// process collectors left out.
func ours(text string) string {
	var b strings.Builder
	for line := range strings.Lines(text) {
		if strings.HasPrefix(line, namespace+"_") {
			b.WriteString(line)
		}
	}
	return b.String()
}

// TestKnownSequence scrapes after a known sequence of events and finds
// exact counts, with every label from its fixed set.
func TestKnownSequence(t *testing.T) {
	m := New("1.2.3")
	var in, out uint64 = 12, 3400
	m.CountBytes(func() uint64 { return in }, func() uint64 { return out })
	pending := 2
	m.CountPending(func() int { return pending })
	for _, r := range []string{ResultOK, ResultOK, ResultOK, ResultAuthFailed, ResultDenied, "made-up"} {
		m.SessionStarted(r, 30*time.Millisecond)
	}
	m.SessionEnded(ReasonExit)
	m.SessionEnded("/etc/passwd")
	m.Request("create_credentials", 200)
	m.Request("create_credentials", 200)
	m.Request("page", 404)
	m.Request("/some/raw/path", 404)

	want := `alfresco_ssh_build_info{version="1.2.3"} 1
alfresco_ssh_credentials_pending 2
alfresco_ssh_http_requests_total{code="200",route="create_credentials"} 2
alfresco_ssh_http_requests_total{code="404",route="other"} 1
alfresco_ssh_http_requests_total{code="404",route="page"} 1
alfresco_ssh_sessions_active 1
alfresco_ssh_sessions_ended_total{reason="client_gone"} 0
alfresco_ssh_sessions_ended_total{reason="connection_lost"} 0
alfresco_ssh_sessions_ended_total{reason="error"} 1
alfresco_ssh_sessions_ended_total{reason="exit"} 1
alfresco_ssh_sessions_ended_total{reason="idle"} 0
alfresco_ssh_sessions_ended_total{reason="killed"} 0
alfresco_ssh_sessions_ended_total{reason="lifetime"} 0
alfresco_ssh_sessions_ended_total{reason="shutdown"} 0
alfresco_ssh_sessions_started_total{result="auth_failed"} 1
alfresco_ssh_sessions_started_total{result="connect_failed"} 0
alfresco_ssh_sessions_started_total{result="denied"} 1
alfresco_ssh_sessions_started_total{result="error"} 1
alfresco_ssh_sessions_started_total{result="host_key_rejected"} 0
alfresco_ssh_sessions_started_total{result="invalid_credentials"} 0
alfresco_ssh_sessions_started_total{result="ok"} 3
alfresco_ssh_ssh_connect_seconds_bucket{le="0.01"} 0
alfresco_ssh_ssh_connect_seconds_bucket{le="0.025"} 0
alfresco_ssh_ssh_connect_seconds_bucket{le="0.05"} 3
alfresco_ssh_ssh_connect_seconds_bucket{le="0.1"} 3
alfresco_ssh_ssh_connect_seconds_bucket{le="0.25"} 3
alfresco_ssh_ssh_connect_seconds_bucket{le="0.5"} 3
alfresco_ssh_ssh_connect_seconds_bucket{le="1"} 3
alfresco_ssh_ssh_connect_seconds_bucket{le="2.5"} 3
alfresco_ssh_ssh_connect_seconds_bucket{le="5"} 3
alfresco_ssh_ssh_connect_seconds_bucket{le="10"} 3
alfresco_ssh_ssh_connect_seconds_bucket{le="30"} 3
alfresco_ssh_ssh_connect_seconds_bucket{le="+Inf"} 3
alfresco_ssh_ssh_connect_seconds_sum 0.09
alfresco_ssh_ssh_connect_seconds_count 3
alfresco_ssh_terminal_bytes_total{direction="in"} 12
alfresco_ssh_terminal_bytes_total{direction="out"} 3400
`
	text := scrape(t, m)
	if got := ours(text); got != want {
		t.Errorf("got metrics:\n%s\nwant:\n%s", got, want)
	}
	for _, family := range []string{"go_goroutines", "process_cpu_seconds_total"} {
		if !strings.Contains(text, "\n"+family+" ") {
			t.Errorf("the scrape has no %s", family)
		}
	}
	servicetest.CheckMetrics(t, text)
}

// TestConcurrentCounting counts from many goroutines at once (the race
// detector watches) and loses nothing.
func TestConcurrentCounting(t *testing.T) {
	m := New("x")
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				m.SessionStarted(ResultOK, time.Millisecond)
				m.Request("socket_io", 200)
				m.SessionEnded(ReasonClientGone)
			}
		})
	}
	wg.Wait()
	text := ours(scrape(t, m))
	for _, want := range []string{
		`alfresco_ssh_sessions_started_total{result="ok"} 8000`,
		`alfresco_ssh_sessions_ended_total{reason="client_gone"} 8000`,
		`alfresco_ssh_http_requests_total{code="200",route="socket_io"} 8000`,
		"alfresco_ssh_sessions_active 0",
	} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("got:\n%s\nwant a line %s", text, want)
		}
	}
}

// BenchmarkScrape is what one scrape costs the gateway.
func BenchmarkScrape(b *testing.B) {
	m := New("x")
	m.CountBytes(func() uint64 { return 1 }, func() uint64 { return 2 })
	h := m.Handler()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	}
}
