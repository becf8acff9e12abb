package main

import (
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The scale mode (-scale N): how far one gateway process goes on this
// machine. The remote side is a light SSH server in a process of its own
// (internal/lightssh; OpenSSH forks per login), the mass of clients a
// third process (clients.go), and this process holds a few sample
// sessions whose echo it measures. Sessions open in waves until N are
// live or a wave fails; then the gateway's memory per session, its CPU
// while all idle (Socket.IO pings), the echo while all idle and while 1%
// of them print, and whether every session survived.

// scaleModeResult is what the scale mode measured; it is also the JSON.
type scaleModeResult struct {
	N             int      `json:"n"`
	Samples       int      `json:"samples"`
	Wave          int      `json:"wave"`
	PrintSessions int      `json:"print_sessions"`
	PrintRate     int      `json:"print_rate_bytes_per_s"` // per printing session; 0: as fast as it goes
	NoFile        uint64   `json:"open_file_limit"`
	NoFileNote    string   `json:"open_file_limit_note,omitempty"`
	PortRange     [2]int   `json:"ephemeral_port_range"`
	Waves         []wave   `json:"waves"`
	Live          int      `json:"live"`          // sessions open after the waves
	RemoteConns   int      `json:"remote_conns"`  // SSH connections the light server held then
	OpenSeconds   float64  `json:"open_seconds"`  // the waves' opening time, measurements between waves excluded
	OpenRate      float64  `json:"open_per_s"`    // sessions opened per second of that
	OpenFailed    int      `json:"open_failed"`   // sessions that did not open
	FirstFailure  string   `json:"first_failure"` // why the first failed wave failed
	OpenErrors    []string `json:"open_errors,omitempty"`

	footprint // per live session

	// CPU seconds over IdleSeconds with every session idle.
	IdleSeconds    float64 `json:"idle_seconds"`
	GatewayIdleCPU float64 `json:"gateway_idle_cpu_s"`
	RemoteIdleCPU  float64 `json:"remote_idle_cpu_s"`
	ClientsIdleCPU float64 `json:"clients_idle_cpu_s"`

	EchoIdle        latency  `json:"echo_idle"`
	EchoPrint       latency  `json:"echo_print"`
	EchoErrors      []string `json:"echo_errors,omitempty"`
	PrintBytes      int64    `json:"print_bytes"`
	PrintError      string   `json:"print_error,omitempty"`
	PrintSeconds    float64  `json:"print_seconds"`
	GatewayPrintCPU float64  `json:"gateway_print_cpu_s"`

	Ended        int      `json:"ended"` // sessions that ended before the bench closed them
	EndedReasons []string `json:"ended_reasons,omitempty"`
	// LostOpens counts the clients process's connections whose lost
	// "open" event was replayed (see recoverLostOpen).
	LostOpens int64 `json:"clients_lost_opens"`

	CloseSeconds         float64 `json:"close_seconds"`
	GoroutinesAfterClose int     `json:"goroutines_after_close"`
}

// wave is one wave of openings and the figures right after it.
type wave struct {
	Live       int      `json:"live"`
	Opened     int      `json:"opened"`
	Failed     int      `json:"failed"`
	Seconds    float64  `json:"seconds"`
	RSS        uint64   `json:"rss_bytes"`
	HeapInuse  uint64   `json:"heap_inuse_bytes"`
	Goroutines int      `json:"goroutines"`
	GatewayCPU float64  `json:"gateway_cpu_s"` // during the wave
	Echo       latency  `json:"echo"`          // one key per sample session
	Ended      int      `json:"ended"`         // sessions ended on their own so far
	Errors     []string `json:"errors,omitempty"`
}

// scaleRun is one run of the scale mode.
type scaleRun struct {
	cfg      *config
	stdout   io.Writer
	progress io.Writer
	rng      *rand.Rand
	tmp      string
	login    login
	remote   *ctlProc // the light SSH server
	clients  *ctlProc
	gw       *gatewayProc
	samples  []terminal
	res      *scaleModeResult
}

func runScale(ctx context.Context, cfg *config, stdout, stderr io.Writer) (err error) {
	n := cfg.scaleN
	r := &scaleRun{
		cfg: cfg, stdout: stdout, progress: io.Discard,
		rng: rand.New(rand.NewPCG(cfg.seed, cfg.seed+1)),
		res: &scaleModeResult{
			N: n, Samples: min(cfg.scaleSamples, n), Wave: cfg.scaleWave,
			PrintSessions: int(math.Ceil(float64(n) * cfg.scalePrintPct / 100)), PrintRate: cfg.scalePrintRate,
		},
	}
	r.res.PrintSessions = min(r.res.PrintSessions, n-r.res.Samples)
	if cfg.verbose {
		r.progress = stderr
	}
	// The gateway holds two descriptors per session (websocket, SSH), the
	// light server and the clients one each.
	var short bool
	if r.res.NoFile, short, err = raiseFileLimitTo(uint64(2*n + 4096)); err != nil {
		return err
	}
	if short {
		r.res.NoFileNote = fmt.Sprintf("the open file limit is %d and could not be raised (that needs CAP_SYS_RESOURCE): "+
			"the gateway, with 2 descriptors per session, runs out of them before %d sessions", r.res.NoFile, n)
	}
	if r.res.PortRange, err = checkPortRange(n); err != nil {
		return err
	}
	meta := collectMeta(cfg, r.res.NoFile)
	if cfg.profileDir != "" {
		if cfg.profileDir, err = filepath.Abs(cfg.profileDir); err != nil {
			return err
		}
		if err := os.MkdirAll(cfg.profileDir, 0o755); err != nil {
			return err
		}
	}
	if r.tmp, err = os.MkdirTemp("", "abench-scale-"); err != nil {
		return err
	}
	gwLog := filepath.Join(r.tmp, "gateway.log")
	defer func() {
		// The logs of a run that failed, or lost sessions, are kept.
		if err == nil && r.res.OpenFailed == 0 && r.res.Ended == 0 && len(r.res.EchoErrors) == 0 && r.res.PrintError == "" {
			os.RemoveAll(r.tmp)
			return
		}
		if err != nil {
			dumpLogs(stderr, filepath.Join(r.tmp, "*.log"))
		}
		fmt.Fprintf(stderr, "bench: the logs of the gateway and the helper processes are kept in %s\n", r.tmp)
	}()

	if err := r.start(ctx, gwLog); err != nil {
		return err
	}
	defer func() {
		for _, stop := range []func() error{
			func() error { return r.clients.stop(60 * time.Second) },
			r.gw.stop,
			func() error { return r.remote.stop(30 * time.Second) },
		} {
			if serr := stop(); serr != nil && err == nil {
				err = serr
			}
		}
	}()
	defer func() { closeAll(r.samples) }()
	if err := r.measure(ctx, gwLog); err != nil {
		r.print(meta)
		return err
	}
	return r.print(meta)
}

func (r *scaleRun) logf(format string, args ...any) {
	fmt.Fprintf(r.progress, "%s bench: %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

// start starts the light SSH server, the gateway and the clients process.
func (r *scaleRun) start(ctx context.Context, gwLog string) (err error) {
	r.logf("starting the light SSH server, the gateway and the clients process")
	r.login = login{user: "bench", password: crand.Text()}
	// Each helper logs to a file of its own (shown when the run fails).
	logs := map[string]*os.File{}
	for _, name := range []string{"remote", "clients"} {
		f, err := os.Create(filepath.Join(r.tmp, name+".log"))
		if err != nil {
			return err
		}
		defer f.Close() // the child has its own descriptor
		logs[name] = f
	}
	var ready sshServerReady
	if r.remote, err = startCtl(ctx, "light SSH server", sshServerEnv,
		sshServerConfig{User: r.login.user, Password: r.login.password}, logs["remote"], &ready); err != nil {
		return err
	}
	r.login.host, r.login.port = ready.Host, ready.Port
	cc := childConfig{SSHTimeout: r.cfg.sshTimeout, ProfileDir: r.cfg.profileDir, Debug: r.cfg.debugLog, Env: r.cfg.gatewayEnv}
	if r.gw, err = startGateway(ctx, cc, gwLog); err != nil {
		r.remote.stop(10 * time.Second)
		return err
	}
	r.clients, err = startCtl(ctx, "clients process", clientsEnv, clientsConfig{
		GatewayURL: r.gw.url, Host: r.login.host, Port: r.login.port, User: r.login.user, Password: r.login.password,
		OpenTimeout: r.openTimeout(),
	}, logs["clients"], new(map[string]bool))
	if err != nil {
		r.gw.stop()
		r.remote.stop(10 * time.Second)
	}
	return err
}

func (r *scaleRun) openTimeout() time.Duration { return r.cfg.sshTimeout + 30*time.Second }

func (r *scaleRun) openSample(ctx context.Context) (terminal, error) {
	return openGateway(ctx, r.gw.url, r.login, r.openTimeout())
}

// measure runs the scale mode's steps; r.res holds what was measured even
// when it fails.
func (r *scaleRun) measure(ctx context.Context, gwLog string) error {
	res := r.res
	// Warm up with one session, so that one-time costs are not counted
	// per session; then measure the baseline.
	warm, err := r.openSample(ctx)
	if err == nil {
		_, err = warm.output().waitForString(ctx, keyTimeout, prompt)
		warm.close()
	}
	if err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	httpClient.CloseIdleConnections()
	if err := r.waitRemoteConns(ctx, 0); err != nil {
		return err
	}
	if res.Base, err = r.gw.snapshot(ctx, true); err != nil {
		return err
	}

	if err := r.gw.profStart(ctx, "scale-open"); err != nil {
		return err
	}
	if err := r.openWaves(ctx, gwLog); err != nil {
		return err
	}
	if err := r.gw.profStop(ctx, "scale-open"); err != nil {
		return err
	}
	if res.Live == 0 {
		return errors.New("no session opened: " + res.FirstFailure)
	}
	var stats sshServerStats
	if err := r.remote.call(ctx, 10*time.Second, ctlRequest{Op: "stats"}, &stats); err != nil {
		return err
	}
	res.RemoteConns = stats.Conns

	// CPU with every session idle: what the Socket.IO pings cost. Before
	// the memory is measured: a forced GC returns the free pages, which
	// the first allocations after it fault in again, at a cost that is not
	// the pings'.
	httpClient.CloseIdleConnections()
	time.Sleep(r.settle())
	r.logf("scale: %d live; idle CPU for %v", res.Live, r.cfg.scaleIdle)
	if err := r.gw.profStart(ctx, "scale-idle"); err != nil {
		return err
	}
	cpu0 := r.cpus()
	t0 := time.Now()
	select {
	case <-time.After(r.cfg.scaleIdle):
	case <-ctx.Done():
		return ctx.Err()
	}
	cpu1 := r.cpus()
	res.IdleSeconds = time.Since(t0).Seconds()
	res.GatewayIdleCPU, res.RemoteIdleCPU, res.ClientsIdleCPU = cpu1[0]-cpu0[0], cpu1[1]-cpu0[1], cpu1[2]-cpu0[2]
	if err := r.gw.profStop(ctx, "scale-idle"); err != nil {
		return err
	}

	// Memory, with every session idle.
	if res.Idle, err = r.gw.snapshot(ctx, false); err != nil {
		return err
	}
	if res.IdleAfterGC, err = r.gw.snapshot(ctx, true); err != nil {
		return err
	}
	res.perSession(res.Live)
	r.logf("scale: RSS %.1f KiB per session after GC", res.RSSPerSessionAfterGCKiB)

	// Echo of the sample sessions, all idle, then while some print.
	r.logf("scale: echo, all idle, %d keys over %d sessions", r.cfg.scaleKeys, len(r.liveSamples()))
	lat, _, errs := echoAcross(ctx, r.samples, r.cfg.scaleKeys, r.rng)
	res.EchoIdle, res.EchoErrors = summarize(lat), errorStrings(errs)
	if res.PrintSessions > 0 {
		if err := r.printing(ctx); err != nil {
			// Shown, not fatal: what ended the sessions matters more.
			res.PrintError = err.Error()
		}
	}
	if res.Ended, err = r.ended(ctx); err != nil {
		return err
	}
	return r.closeAllSessions(ctx)
}

// ended returns how many sessions, samples and mass, have ended on their
// own so far, and keeps the clients process's reasons.
func (r *scaleRun) ended(ctx context.Context) (int, error) {
	var check checkReply
	if err := r.clients.call(ctx, time.Minute, ctlRequest{Op: "check"}, &check); err != nil {
		return 0, err
	}
	r.res.EndedReasons, r.res.LostOpens = check.Reasons, check.LostOpens
	n := check.Ended
	for _, t := range r.liveSamples() {
		select {
		case <-t.(*gatewayTerminal).gone:
			n++
		default:
		}
	}
	return n, nil
}

// openWaves opens the sample sessions, then the mass in waves, until N
// are live or a wave fails.
func (r *scaleRun) openWaves(ctx context.Context, gwLog string) error {
	res := r.res
	record := func(w wave, cpu0 float64, errs []string) error {
		snap, err := r.gw.snapshot(ctx, false)
		if err != nil {
			return err
		}
		cpu, _ := procCPU(r.gw.pid())
		res.Live += w.Opened
		res.OpenFailed += w.Failed
		res.OpenSeconds += w.Seconds
		w.Live, w.RSS, w.HeapInuse, w.Goroutines, w.GatewayCPU, w.Errors = res.Live, snap.RSS, snap.HeapInuse, snap.Goroutines, cpu.Seconds()-cpu0, errs
		if w.Failed > 0 && res.FirstFailure == "" {
			res.FirstFailure = fmt.Sprintf("wave to %d live: %d of %d failed: %s", res.Live+w.Failed, w.Failed, w.Opened+w.Failed, strings.Join(errs, "; "))
			res.OpenErrors = append(errs, gatewayFailures(gwLog)...)
		}
		if w.Ended, err = r.ended(ctx); err != nil {
			return err
		}
		// One key per sample session: how echo holds up as sessions add up.
		lat, _, _ := echoAcross(ctx, r.samples, len(r.liveSamples()), r.rng)
		w.Echo = summarize(lat)
		res.Waves = append(res.Waves, w)
		r.logf("scale: %d live after %.1f s of opening (wave: %d opened, %d failed, %.1f s); RSS %d MiB, %d goroutines; echo p99 %.2f ms",
			res.Live, res.OpenSeconds, w.Opened, w.Failed, w.Seconds, snap.RSS>>20, snap.Goroutines, w.Echo.P99)
		return nil
	}

	r.logf("scale: opening %d sample sessions", res.Samples)
	cpu0, _ := procCPU(r.gw.pid())
	start := time.Now()
	terms, _, errs := openMany(ctx, res.Samples, r.cfg.maxOpening, r.openTimeout(), r.openSample)
	r.samples = terms
	if err := record(wave{Opened: res.Samples - len(errs), Failed: len(errs), Seconds: time.Since(start).Seconds()}, cpu0.Seconds(), errorStrings(errs)); err != nil {
		return err
	}
	for res.Live < res.N && res.OpenFailed == 0 {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		k := min(res.Wave, res.N-res.Live)
		cpu0, _ := procCPU(r.gw.pid())
		var rep openReply
		// Each session either opens or times out; the slowest wave is
		// k/in-flight rounds of the timeout.
		limit := time.Duration(k/r.cfg.maxOpening+2)*r.openTimeout() + time.Minute
		if err := r.clients.call(ctx, limit, ctlRequest{Op: "open", N: k, InFlight: r.cfg.maxOpening}, &rep); err != nil {
			return err
		}
		if err := record(wave{Opened: rep.Opened, Failed: rep.Failed, Seconds: rep.Seconds}, cpu0.Seconds(), rep.Errors); err != nil {
			return err
		}
	}
	if res.OpenSeconds > 0 {
		res.OpenRate = float64(res.Live) / res.OpenSeconds
	}
	return nil
}

// printing measures the sample sessions' echo while 1% of the sessions
// print.
func (r *scaleRun) printing(ctx context.Context) error {
	res := r.res
	r.logf("scale: %d sessions print at %d bytes/s each; echo, %d keys", res.PrintSessions, res.PrintRate, r.cfg.scaleKeys)
	var pr printReply
	if err := r.clients.call(ctx, 2*keyTimeout, ctlRequest{Op: "print", N: res.PrintSessions, Rate: res.PrintRate}, &pr); err != nil {
		return err
	}
	if err := r.gw.profStart(ctx, "scale-print"); err != nil {
		return err
	}
	cpu0, _ := procCPU(r.gw.pid())
	t0 := time.Now()
	lat, _, errs := echoAcross(ctx, r.samples, r.cfg.scaleKeys, r.rng)
	cpu1, _ := procCPU(r.gw.pid())
	elapsed := time.Since(t0)
	if err := r.gw.profStop(ctx, "scale-print"); err != nil {
		return err
	}
	var q quietReply
	if err := r.clients.call(ctx, 2*keyTimeout, ctlRequest{Op: "quiet"}, &q); err != nil {
		return err
	}
	res.EchoPrint, res.PrintBytes, res.PrintSeconds = summarize(lat), q.Bytes, q.Seconds
	// The gateway's CPU while printing, as a rate over the echo's time.
	res.GatewayPrintCPU = (cpu1 - cpu0).Seconds() / elapsed.Seconds() * q.Seconds
	res.EchoErrors = append(res.EchoErrors, errorStrings(errs)...)
	return nil
}

// closeAllSessions closes every session and waits until the remote has no
// connection left and the gateway's goroutines are back near the base.
func (r *scaleRun) closeAllSessions(ctx context.Context) error {
	res := r.res
	r.logf("scale: closing %d sessions", res.Live)
	t0 := time.Now()
	closeAll(r.samples)
	r.samples = nil
	if err := r.clients.call(ctx, 5*time.Minute, ctlRequest{Op: "close"}, new(map[string]int)); err != nil {
		return err
	}
	if err := r.waitRemoteConns(ctx, 0); err != nil {
		return err
	}
	res.CloseSeconds = time.Since(t0).Seconds()
	deadline := time.Now().Add(30 * time.Second)
	for {
		s, err := r.gw.stats(ctx)
		if err != nil {
			return err
		}
		res.GoroutinesAfterClose = s.Goroutines
		if s.Goroutines <= res.Base.Goroutines+5 || time.Now().After(deadline) {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (r *scaleRun) liveSamples() []terminal {
	var out []terminal
	for _, t := range r.samples {
		if t != nil {
			out = append(out, t)
		}
	}
	return out
}

// waitRemoteConns waits until the light SSH server holds at most n
// connections.
func (r *scaleRun) waitRemoteConns(ctx context.Context, n int) error {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var s sshServerStats
		if err := r.remote.call(ctx, 10*time.Second, ctlRequest{Op: "stats"}, &s); err != nil {
			return err
		}
		if s.Conns <= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the light SSH server still holds %d connections, want at most %d", s.Conns, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// cpus returns the CPU seconds used so far by the gateway, the light SSH
// server and the clients process.
func (r *scaleRun) cpus() [3]float64 {
	var out [3]float64
	for i, pid := range []int{r.gw.pid(), r.remote.pid(), r.clients.pid()} {
		d, _ := procCPU(pid)
		out[i] = d.Seconds()
	}
	return out
}

func (r *scaleRun) settle() time.Duration {
	if r.cfg.quick {
		return 200 * time.Millisecond
	}
	return 5 * time.Second
}

// raiseFileLimitTo raises RLIMIT_NOFILE, soft and hard, to need, or as far
// as it may: the hard limit only with CAP_SYS_RESOURCE (root, outside
// most containers). The child processes inherit it. short is set when the
// limit stays below need.
func raiseFileLimitTo(need uint64) (limit uint64, short bool, err error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, false, err
	}
	if rl.Max < need {
		up := syscall.Rlimit{Cur: need, Max: need}
		if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &up) == nil {
			return need, false, nil
		}
	}
	rl.Cur = rl.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, false, fmt.Errorf("raise the open file limit: %w", err)
	}
	return rl.Cur, rl.Cur < need, nil
}

// checkPortRange returns the kernel's ephemeral port range and fails when
// it cannot hold n connections to one address (the clients to the gateway,
// the gateway to the light server), with some room for the rest.
func checkPortRange(n int) ([2]int, error) {
	var pr [2]int
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return pr, nil // not Linux: let the dials say
	}
	f := strings.Fields(string(b))
	if len(f) == 2 {
		pr[0], _ = strconv.Atoi(f[0])
		pr[1], _ = strconv.Atoi(f[1])
	}
	if size := pr[1] - pr[0] + 1; size < n+2000 {
		return pr, fmt.Errorf("the ephemeral port range %d-%d holds %d ports, too few for %d sessions to one address: widen it (sysctl -w net.ipv4.ip_local_port_range=\"1024 65535\")", pr[0], pr[1], size, n)
	}
	return pr, nil
}

// print writes the scale mode's table and its JSON.
func (r *scaleRun) print(m meta) error {
	m.LostOpens = lostOpens.Load()
	writeScaleTable(r.stdout, m, r.res)
	return writeJSON(r.stdout, r.cfg.jsonPath, struct {
		Meta  meta             `json:"meta"`
		Scale *scaleModeResult `json:"scale"`
	}{m, r.res})
}

// writeScaleTable prints the scale mode's figures and its waves.
func writeScaleTable(w io.Writer, m meta, s *scaleModeResult) {
	fmt.Fprintf(w, "alfresco-ssh gateway, scale mode (light SSH server) — %s\n", m.Date)
	fmt.Fprintf(w, "%s, %d CPUs, Linux %s, %s, revision %s; open file limit %d, ephemeral ports %d-%d\n\n",
		m.CPU, m.CPUs, m.Kernel, m.Go, m.Revision, s.NoFile, s.PortRange[0], s.PortRange[1])
	if s.NoFileNote != "" {
		fmt.Fprintf(w, "note: %s\n\n", s.NoFileNote)
	}
	verdict := func(ok bool) string {
		if ok {
			return "ok"
		}
		return "FAIL"
	}
	perSec := func(cpu float64) float64 { return cpu / max(s.IdleSeconds, 1e-9) }
	cells := [][]string{
		{"measure", "value", "target", ""},
		{"sessions live (of " + strconv.Itoa(s.N) + ")", strconv.Itoa(s.Live), strconv.Itoa(s.N), verdict(s.Live == s.N)},
		{"sessions that failed to open", strconv.Itoa(s.OpenFailed), "0", verdict(s.OpenFailed == 0)},
		{"time to open them all (s)", fmt.Sprintf("%.1f", s.OpenSeconds), "", ""},
		{"sessions opened per second", fmt.Sprintf("%.1f", s.OpenRate), "", ""},
		{"gateway RSS per live session, before GC (KiB)", fmt.Sprintf("%.1f", s.RSSPerSessionKiB), "", ""},
		{"gateway RSS per idle session, after GC (KiB)", fmt.Sprintf("%.1f", s.RSSPerSessionAfterGCKiB), "<= 100", verdict(s.RSSPerSessionAfterGCKiB <= 100)},
		{"gateway heap per session (KiB)", fmt.Sprintf("%.1f", s.HeapPerSessionKiB), "", ""},
		{"gateway goroutines per session", fmt.Sprintf("%.2f", s.GoroutinesPerSession), "", ""},
		{"gateway CPU, all idle (% of one CPU)", fmt.Sprintf("%.2f", 100*perSec(s.GatewayIdleCPU)), "", ""},
		{"gateway CPU per idle session (µs per s)", fmt.Sprintf("%.2f", 1e6*perSec(s.GatewayIdleCPU)/float64(max(s.Live, 1))), "", ""},
		{"light SSH server / clients CPU, all idle (% of one CPU)", fmt.Sprintf("%.2f / %.2f", 100*perSec(s.RemoteIdleCPU), 100*perSec(s.ClientsIdleCPU)), "", ""},
		{fmt.Sprintf("echo p50 / p99 / max, all idle (ms, %d sessions)", s.Samples), fmt.Sprintf("%.2f / %.2f / %.2f", s.EchoIdle.P50, s.EchoIdle.P99, s.EchoIdle.Max), "p99 <= 10", verdict(s.EchoIdle.N > 0 && s.EchoIdle.P99 <= 10)},
	}
	if s.PrintSessions > 0 {
		rate := "as fast as they go"
		if s.PrintRate > 0 {
			rate = fmt.Sprintf("%d KB/s each", s.PrintRate/1000)
		}
		cells = append(cells,
			[]string{fmt.Sprintf("echo p50 / p99 / max, %d sessions print %s (ms)", s.PrintSessions, rate), fmt.Sprintf("%.2f / %.2f / %.2f", s.EchoPrint.P50, s.EchoPrint.P99, s.EchoPrint.Max), "", ""},
			[]string{"printed, all printing sessions (MB/s)", fmt.Sprintf("%.2f", float64(s.PrintBytes)/1e6/max(s.PrintSeconds, 1e-9)), "", ""},
			[]string{"gateway CPU while they print (% of one CPU)", fmt.Sprintf("%.1f", 100*s.GatewayPrintCPU/max(s.PrintSeconds, 1e-9)), "", ""},
		)
	}
	cells = append(cells,
		[]string{"sessions that ended on their own", strconv.Itoa(s.Ended), "0", verdict(s.Ended == 0)},
		[]string{"echo errors", strconv.Itoa(len(s.EchoErrors)), "0", verdict(len(s.EchoErrors) == 0)},
		[]string{"time to close them all (s)", fmt.Sprintf("%.1f", s.CloseSeconds), "", ""},
	)
	writeCells(w, cells, 0, 2)
	if s.FirstFailure != "" {
		fmt.Fprintf(w, "\nfirst failure: %s\n", s.FirstFailure)
		for _, e := range s.OpenErrors {
			fmt.Fprintf(w, "  %s\n", e)
		}
	}
	for _, e := range append(s.EndedReasons, s.EchoErrors...) {
		fmt.Fprintf(w, "  %s\n", e)
	}
	if s.PrintError != "" {
		fmt.Fprintf(w, "  printing: %s\n", s.PrintError)
	}
	fmt.Fprintln(w)
	waves := [][]string{{"live", "wave (s)", "opened/s", "failed", "ended so far", "gateway RSS (MiB)", "heap (MiB)", "goroutines", "gateway CPU (s)", "echo p50 / p99 (ms)"}}
	for _, wv := range s.Waves {
		waves = append(waves, []string{
			strconv.Itoa(wv.Live), fmt.Sprintf("%.1f", wv.Seconds), fmt.Sprintf("%.0f", float64(wv.Opened)/max(wv.Seconds, 1e-9)),
			strconv.Itoa(wv.Failed), strconv.Itoa(wv.Ended), fmt.Sprintf("%.0f", float64(wv.RSS)/(1<<20)), fmt.Sprintf("%.0f", float64(wv.HeapInuse)/(1<<20)),
			strconv.Itoa(wv.Goroutines), fmt.Sprintf("%.1f", wv.GatewayCPU), fmt.Sprintf("%.2f / %.2f", wv.Echo.P50, wv.Echo.P99),
		})
	}
	writeCells(w, waves)
	if n := m.LostOpens + s.LostOpens; n > 0 {
		fmt.Fprintf(w, "\n(the Go client lost its engine \"open\" event %d times; replayed, see recoverLostOpen)\n", n)
	}
}

// dumpLogs copies the end of every log matching pattern to w, for a
// failed run.
func dumpLogs(w io.Writer, pattern string) {
	logs, _ := filepath.Glob(pattern)
	for _, p := range logs {
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		fmt.Fprintf(w, "--- last lines of %s:\n%s\n", filepath.Base(p), strings.Join(lines[max(0, len(lines)-40):], "\n"))
	}
}
