// Command bench measures the gateway side by side with direct SSH, against
// one real OpenSSH sshd that it starts itself (internal/sshdtest; it must
// run as root on Linux). See README.md in this directory for the flags,
// what each figure means and the latest measured table.
//
// The gateway runs in a child process (this binary, re-executed with
// ALFRESCO_BENCH_GATEWAY set), so that its CPU time, RSS and goroutines
// are its own; the clients, direct and Socket.IO, run in this process.
// The scale mode (-scale N, scale.go) runs a light SSH server and the mass
// of its clients in two more child processes.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/alfresco-ssh/alfresco-ssh/internal/sshdtest"
)

func main() {
	if cc := os.Getenv(childEnv); cc != "" {
		os.Exit(gatewayMain(cc))
	}
	if fc := os.Getenv(floodEnv); fc != "" {
		os.Exit(floodMain(fc))
	}
	if sc := os.Getenv(sshServerEnv); sc != "" {
		os.Exit(sshServerMain(sc))
	}
	if cc := os.Getenv(clientsEnv); cc != "" {
		os.Exit(clientsMain(cc))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// config is the command line.
type config struct {
	quick        bool
	runs         int
	keys         int
	outputMB     float64
	prompts      int
	isoKeys      int
	sessions     []int
	sessionsKeys int
	maxOpening   int
	sshTimeout   time.Duration
	jsonPath     string
	profileDir   string
	only         map[string]bool
	seed         uint64
	verbose      bool
	debugLog     bool
	gatewayEnv   []string
	sshdLogLevel string

	// The scale mode (scale.go), when scaleN > 0.
	scaleN         int
	scaleWave      int
	scaleSamples   int
	scaleKeys      int
	scalePrintPct  float64
	scalePrintRate int
	scaleIdle      time.Duration
}

var phases = []string{"echo", "output", "prompt", "isolation", "sessions"}

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	var c config
	var sessions, only string
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.BoolVar(&c.quick, "quick", false, "tiny sizes, one run: a smoke test of a few seconds (flags given explicitly still win)")
	fs.IntVar(&c.runs, "runs", 3, "repetitions of the echo, output and POST-to-prompt measures (the table shows the median)")
	fs.IntVar(&c.keys, "keys", 1000, "keys typed per echo run")
	fs.Float64Var(&c.outputMB, "output-mb", 100, "size of the printed file in MB (10^6 bytes)")
	fs.IntVar(&c.prompts, "prompts", 10, "POST-to-prompt samples per run and side")
	fs.IntVar(&c.isoKeys, "iso-keys", 1000, "keys typed per isolation scenario")
	fs.StringVar(&sessions, "sessions", "1,200,1000", "comma-separated numbers of concurrent sessions of the sessions phase")
	fs.IntVar(&c.sessionsKeys, "sessions-keys", 1000, "keys typed across the open sessions at each number (at least one per session)")
	fs.IntVar(&c.maxOpening, "max-opening", 200, "at most this many sessions opening at a time in the sessions phase (sshd's listen backlog is 128: a burst of 1,000 connections gets some reset)")
	fs.DurationVar(&c.sshTimeout, "ssh-timeout", 10*time.Second, "the gateway's SSH connect+login timeout (the product's default)")
	fs.StringVar(&c.jsonPath, "json", "bench-results.json", `where to write the results as JSON ("" for nowhere)`)
	fs.StringVar(&c.profileDir, "profile", "", "directory for pprof profiles of the gateway process, per phase (CPU, heap, goroutine, block, mutex)")
	fs.StringVar(&only, "only", "", "comma-separated phases to run: "+strings.Join(phases, ","))
	fs.Uint64Var(&c.seed, "seed", 1, "seed of the random keys, pauses and file contents")
	fs.BoolVar(&c.verbose, "v", false, "progress on stderr")
	var gatewayEnv string
	fs.StringVar(&gatewayEnv, "gateway-env", "", `extra environment of the gateway process, space-separated NAME=VALUE (e.g. "GOGC=400 GOMAXPROCS=4"), for tuning experiments`)
	fs.StringVar(&c.sshdLogLevel, "sshd-log-level", "ERROR", "sshd's LogLevel (e.g. VERBOSE); its log is printed at the end unless ERROR, and when the run fails")
	fs.IntVar(&c.scaleN, "scale", 0, "the scale mode, alone: open sessions in waves until this many are live, against a light SSH server (see README.md)")
	fs.IntVar(&c.scaleWave, "scale-wave", 1000, "scale mode: sessions opened per wave")
	fs.IntVar(&c.scaleSamples, "scale-samples", 100, "scale mode: sessions whose echo is measured (part of the live ones)")
	fs.IntVar(&c.scaleKeys, "scale-keys", 1000, "scale mode: keys typed across the sample sessions per echo measure")
	fs.Float64Var(&c.scalePrintPct, "scale-print-pct", 1, "scale mode: percentage of the sessions that print during the second echo measure (0: none)")
	fs.IntVar(&c.scalePrintRate, "scale-print-rate", 10000, "scale mode: bytes a second each printing session prints (0: as fast as it goes)")
	fs.DurationVar(&c.scaleIdle, "scale-idle", 30*time.Second, "scale mode: how long CPU is measured with every session idle")
	fs.BoolVar(&c.debugLog, "gateway-debug", false, "the gateway process logs at debug level (its log is shown when the run fails)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if c.quick {
		quick := map[string]func(){
			"runs":          func() { c.runs = 1 },
			"keys":          func() { c.keys = 60 },
			"output-mb":     func() { c.outputMB = 2 },
			"prompts":       func() { c.prompts = 2 },
			"iso-keys":      func() { c.isoKeys = 40 },
			"sessions":      func() { sessions = "1,5" },
			"sessions-keys": func() { c.sessionsKeys = 20 },
			"json":          func() { c.jsonPath = "" },
			"scale-wave":    func() { c.scaleWave = max(1, c.scaleN/2) },
			"scale-samples": func() { c.scaleSamples = min(c.scaleSamples, 5) },
			"scale-keys":    func() { c.scaleKeys = 20 },
			"scale-idle":    func() { c.scaleIdle = time.Second },
		}
		for name, apply := range quick {
			if !set[name] {
				apply()
			}
		}
	}
	for _, kv := range strings.Fields(gatewayEnv) {
		if name, _, ok := strings.Cut(kv, "="); !ok || name == "" {
			return nil, fmt.Errorf("-gateway-env: %q is not NAME=VALUE", kv)
		}
		c.gatewayEnv = append(c.gatewayEnv, kv)
	}
	for f := range strings.SplitSeq(sessions, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-sessions: %q is not a positive number", f)
		}
		c.sessions = append(c.sessions, n)
	}
	c.only = map[string]bool{}
	for p := range strings.SplitSeq(only, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		known := false
		for _, q := range phases {
			known = known || p == q
		}
		if !known {
			if p == "scale" {
				return nil, errors.New(`-only: the phase "scale" is now "sessions" (-sessions 1,200,1000); -scale N alone runs the scale mode`)
			}
			return nil, fmt.Errorf("-only: unknown phase %q, want some of %s", p, strings.Join(phases, ","))
		}
		c.only[p] = true
	}
	switch {
	case c.runs < 1, c.keys < 1, c.prompts < 1, c.isoKeys < 1, c.sessionsKeys < 1, c.maxOpening < 1:
		return nil, errors.New("-runs, -keys, -prompts, -iso-keys, -sessions-keys and -max-opening must be positive")
	case c.outputMB <= 0:
		return nil, errors.New("-output-mb must be positive")
	case c.sshTimeout <= 0:
		return nil, errors.New("-ssh-timeout must be positive")
	case c.scaleN < 0, c.scaleWave < 1, c.scaleSamples < 1, c.scaleKeys < 1, c.scalePrintRate < 0, c.scaleIdle <= 0:
		return nil, errors.New("-scale must not be negative; -scale-wave, -scale-samples, -scale-keys and -scale-idle must be positive, -scale-print-rate not negative")
	case c.scalePrintPct < 0 || c.scalePrintPct > 100:
		return nil, errors.New("-scale-print-pct must be between 0 and 100")
	case c.scaleN > 0 && len(c.only) > 0:
		return nil, errors.New("-scale runs the scale mode alone: drop -only")
	}
	return &c, nil
}

func (c *config) wants(phase string) bool { return len(c.only) == 0 || c.only[phase] }

// bench is one benchmark run.
type bench struct {
	cfg      *config
	stdout   io.Writer
	progress io.Writer
	rng      *rand.Rand
	sshd     *sshdtest.Server
	login    login
	gw       *gatewayProc // the gateway of every phase but sessions
	tmp      string       // temporary directory (readable by the test user)
	dataPath string       // the file the output phases print
	want     []byte       // what the terminal receives when it is printed
	res      *results
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	b := &bench{
		cfg:      cfg,
		stdout:   stdout,
		progress: io.Discard,
		rng:      rand.New(rand.NewPCG(cfg.seed, cfg.seed+1)),
		res:      &results{},
	}
	if cfg.verbose {
		b.progress = stderr
	}
	if cfg.scaleN > 0 {
		return runScale(ctx, cfg, stdout, stderr)
	}
	nofile, err := raiseFileLimit()
	if err != nil {
		return fmt.Errorf("raise the open file limit: %w", err)
	}
	b.res.Meta = collectMeta(cfg, nofile)
	if cfg.profileDir != "" {
		if cfg.profileDir, err = filepath.Abs(cfg.profileDir); err != nil {
			return err
		}
		if err := os.MkdirAll(cfg.profileDir, 0o755); err != nil {
			return err
		}
	}

	b.logf("starting sshd")
	b.sshd, err = sshdtest.Launch(sshdtest.WithConfig(
		"MaxStartups 2000:30:4000",
		"MaxSessions 100",
		"LoginGraceTime 180",
		"LogLevel "+cfg.sshdLogLevel,
	))
	if err != nil {
		return err
	}
	defer func() {
		if err != nil || cfg.sshdLogLevel != "ERROR" {
			if log := b.sshd.Log(); len(log) > 0 {
				fmt.Fprintf(stderr, "--- sshd log:\n%s\n", log)
			}
		}
		if cerr := b.sshd.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	b.login = login{host: b.sshd.Host, port: b.sshd.Port, user: b.sshd.User, password: b.sshd.Password}

	if b.tmp, err = os.MkdirTemp("", "abench-"); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			dumpLogs(stderr, filepath.Join(b.tmp, "gateway*.log"))
		}
		os.RemoveAll(b.tmp)
	}()
	if err := os.Chmod(b.tmp, 0o755); err != nil { // the test user reads the file
		return err
	}
	file, want := makeOutput(int(cfg.outputMB*1e6), cfg.seed)
	b.dataPath, b.want = filepath.Join(b.tmp, "o"), want
	if err := os.WriteFile(b.dataPath, file, 0o644); err != nil {
		return err
	}

	b.logf("starting the gateway process")
	if b.gw, err = startGateway(ctx, b.childConfig(), filepath.Join(b.tmp, "gateway.log")); err != nil {
		return err
	}
	defer func() {
		if serr := b.gw.stop(); serr != nil && err == nil {
			err = serr
		}
	}()

	if err := b.protocolCheck(ctx); err != nil {
		return fmt.Errorf("protocol check: %w", err)
	}
	steps := []struct {
		name   string
		phases []string // the step runs when any of these is wanted
		run    func(context.Context) error
	}{
		{"echo and output", []string{"echo", "output"}, b.echoAndOutput},
		{"prompt", []string{"prompt"}, b.prompt},
		{"isolation", []string{"isolation"}, b.isolation},
		{"sessions", []string{"sessions"}, b.sessions},
	}
	for _, s := range steps {
		if !slices.ContainsFunc(s.phases, b.cfg.wants) {
			continue
		}
		if err := s.run(ctx); err != nil {
			b.printReport()
			return fmt.Errorf("%s: %w", s.name, err)
		}
		if err := b.waitSessions(0); err != nil {
			return fmt.Errorf("after %s: %w", s.name, err)
		}
	}
	return b.printReport()
}

// settle is how long sessions idle before the gateway's memory is read.
func (b *bench) settle() time.Duration {
	if b.cfg.quick {
		return 200 * time.Millisecond
	}
	return 2 * time.Second
}

func (b *bench) childConfig() childConfig {
	return childConfig{SSHTimeout: b.cfg.sshTimeout, ProfileDir: b.cfg.profileDir, Debug: b.cfg.debugLog, Env: b.cfg.gatewayEnv}
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.progress, "%s bench: %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

// waitSessions waits until sshd runs at most n sessions (processes are
// what is visible; each session has at least one).
func (b *bench) waitSessions(n int) error {
	deadline := time.Now().Add(90 * time.Second)
	for b.sshd.Children() > n*4 || (n == 0 && b.sshd.Children() > 0) {
		if time.Now().After(deadline) {
			return fmt.Errorf("sshd still runs %d processes for %d expected sessions", b.sshd.Children(), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

func (b *bench) openDirect(ctx context.Context) (terminal, error) {
	t, err := dialDirect(ctx, b.login)
	if err != nil {
		return nil, err
	}
	return t, nil
}

func (b *bench) openGatewayOn(g *gatewayProc) func(context.Context) (terminal, error) {
	return func(ctx context.Context) (terminal, error) {
		t, err := openGateway(ctx, g.url, b.login, b.cfg.sshTimeout+30*time.Second)
		if err != nil {
			return nil, err
		}
		return t, nil
	}
}

// openAtPrompt opens a terminal and waits for its prompt.
func (b *bench) openAtPrompt(ctx context.Context, open func(context.Context) (terminal, error)) (terminal, error) {
	t, err := open(ctx)
	if err != nil {
		return nil, err
	}
	if _, err = t.output().waitForString(ctx, keyTimeout, prompt); err != nil {
		t.close()
		return nil, err
	}
	return t, nil
}

// openPair opens one direct and one gateway terminal, each at its prompt.
func (b *bench) openPair(ctx context.Context) (direct, gateway terminal, err error) {
	for i, open := range []func(context.Context) (terminal, error){b.openDirect, b.openGatewayOn(b.gw)} {
		t, err := b.openAtPrompt(ctx, open)
		if err != nil {
			if direct != nil {
				direct.close()
			}
			return nil, nil, err
		}
		if i == 0 {
			direct = t
		} else {
			gateway = t
		}
	}
	return direct, gateway, nil
}

// protocolCheck runs one whole session through the gateway with the Go
// client and checks it ends as the protocol says: the red closing message
// without timeout, then a server-side disconnect.
func (b *bench) protocolCheck(ctx context.Context) error {
	b.logf("protocol check")
	id, err := createCredentials(ctx, b.gw.url, b.login)
	if err != nil {
		return err
	}
	t, err := connectGateway(b.gw.url, id, keyTimeout, false)
	if err != nil {
		return err
	}
	defer t.close()
	if err := t.waitReady(ctx, keyTimeout); err != nil {
		return err
	}
	if _, err := t.out.waitForString(ctx, keyTimeout, prompt); err != nil {
		return err
	}
	if err := t.send("echo $((6*7)); exit\r"); err != nil {
		return err
	}
	if _, err := t.out.waitForString(ctx, keyTimeout, "\r\n42\r\n"); err != nil {
		return err
	}
	closing, reason, err := t.ended(ctx, keyTimeout)
	if err != nil {
		return err
	}
	text, _ := closing["output"].(string)
	if timeout, ok := closing["timeout"].(bool); !ok || timeout || !strings.Contains(text, "\x1b[91m") {
		return fmt.Errorf("closing message: got %v, want a red output with timeout false", closing)
	}
	if reason != "io server disconnect" {
		return fmt.Errorf("disconnect reason: got %q, want %q", reason, "io server disconnect")
	}
	// Used credentials are refused with the closing message too.
	t2, err := connectGateway(b.gw.url, id, keyTimeout, false)
	if err != nil {
		return err
	}
	closing, reason, err = t2.ended(ctx, keyTimeout)
	t2.close()
	if err != nil {
		return err
	}
	if text, _ := closing["output"].(string); !strings.Contains(text, "credentials") || reason != "io server disconnect" {
		return fmt.Errorf("reused credentials: got closing %v, reason %q", closing, reason)
	}
	b.res.Meta.ProtocolCheck = "ok: start-session, connection-ready, ssh-output, red closing message, io server disconnect; used credentials refused"
	return nil
}

// echoAndOutput measures keystroke echo and then output, alternating the
// sides run by run, on one terminal of each side.
func (b *bench) echoAndOutput(ctx context.Context) error {
	direct, gateway, err := b.openPair(ctx)
	if err != nil {
		return err
	}
	defer closeAll([]terminal{direct, gateway})
	// Warm up both paths (not recorded).
	for _, t := range []terminal{direct, gateway} {
		if _, err := typeKeys(ctx, t, 50, b.rng); err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
	}
	if b.cfg.wants("echo") {
		r := &echoResult{}
		if err := b.gw.profStart(ctx, "echo"); err != nil {
			return err
		}
		for run := range b.cfg.runs {
			var pr latencyPair
			for _, side := range sideOrder(run) {
				t := map[string]terminal{"direct": direct, "gateway": gateway}[side]
				b.logf("echo run %d: %s, %d keys", run+1, side, b.cfg.keys)
				lat, err := typeKeys(ctx, t, b.cfg.keys, b.rng)
				if err != nil {
					return fmt.Errorf("%s: %w", side, err)
				}
				pr.set(side, summarize(lat))
			}
			r.Runs = append(r.Runs, pr)
		}
		if err := b.gw.profStop(ctx, "echo"); err != nil {
			return err
		}
		b.res.Echo = r
	}
	if b.cfg.wants("output") {
		textLogin := b.login
		textLogin.textOutput = true
		text, err := b.openAtPrompt(ctx, func(ctx context.Context) (terminal, error) {
			return openGateway(ctx, b.gw.url, textLogin, b.cfg.sshTimeout+30*time.Second)
		})
		if err != nil {
			return fmt.Errorf("gateway, text output: %w", err)
		}
		defer text.close()
		r := &outputResult{FileBytes: int(b.cfg.outputMB * 1e6)}
		if err := b.gw.profStart(ctx, "output"); err != nil {
			return err
		}
		for run := range b.cfg.runs {
			var pr outputPair
			for _, side := range sideOrder(run) {
				b.logf("output run %d: %s, %.0f MB", run+1, side, b.cfg.outputMB)
				var o outputRun
				if side == "direct" {
					o, err = printFile(ctx, direct, b.dataPath, b.want, 0)
					pr.Direct = o
				} else {
					o, err = printFile(ctx, gateway, b.dataPath, b.want, b.gw.pid())
					pr.Gateway = o
				}
				if err != nil {
					return fmt.Errorf("%s: %w", side, err)
				}
			}
			b.logf("output run %d: gateway, text messages, %.0f MB", run+1, b.cfg.outputMB)
			if pr.Text, err = printFile(ctx, text, b.dataPath, b.want, b.gw.pid()); err != nil {
				return fmt.Errorf("gateway, text output: %w", err)
			}
			r.Runs = append(r.Runs, pr)
		}
		if err := b.gw.profStop(ctx, "output"); err != nil {
			return err
		}
		b.res.Output = r
	}
	return nil
}

// sideOrder alternates which side goes first, so that neither always
// runs on a machine warmed up (or disturbed) by the other.
func sideOrder(run int) []string {
	if run%2 == 0 {
		return []string{"direct", "gateway"}
	}
	return []string{"gateway", "direct"}
}

// prompt measures the time from nothing to the first prompt: for the
// gateway POST /create-credentials, Socket.IO connect, start-session,
// connection-ready and the prompt; for direct SSH dial, login, PTY, shell
// and the prompt.
func (b *bench) prompt(ctx context.Context) error {
	var direct, gateway []time.Duration
	var failed [2][]error // direct, gateway
	if err := b.gw.profStart(ctx, "prompt"); err != nil {
		return err
	}
	total := b.cfg.runs * b.cfg.prompts
	b.logf("POST to prompt: %d samples per side", total)
	for i := range total {
		for _, side := range sideOrder(i) {
			open, k := b.openDirect, 0
			if side == "gateway" {
				open, k = func(ctx context.Context) (terminal, error) {
					return openGateway(ctx, b.gw.url, b.login, keyTimeout)
				}, 1
			}
			t0 := time.Now()
			t, err := open(ctx)
			var at time.Time
			if err == nil {
				at, err = t.output().waitForString(ctx, keyTimeout, prompt)
				t.close()
			}
			if err != nil {
				// Recorded and shown, not fatal: one lost session must
				// not hide the other figures.
				if ctx.Err() != nil {
					return ctx.Err()
				}
				b.logf("POST to prompt: %s session failed: %v", side, err)
				failed[k] = append(failed[k], err)
			} else if side == "direct" {
				direct = append(direct, at.Sub(t0))
			} else {
				gateway = append(gateway, at.Sub(t0))
			}
			if err := b.waitSessions(0); err != nil {
				return err
			}
		}
	}
	if err := b.gw.profStop(ctx, "prompt"); err != nil {
		return err
	}
	b.res.Prompt = &promptResult{
		latencyPair:     latencyPair{Direct: summarize(direct), Gateway: summarize(gateway)},
		Attempts:        total,
		DirectFailures:  errorStrings(failed[0]),
		GatewayFailures: errorStrings(failed[1]),
		DirectFailed:    len(failed[0]),
		GatewayFailed:   len(failed[1]),
	}
	return nil
}

// isolation measures one terminal's echo while a neighbour floods output,
// for each side, and while a gateway neighbour connects to a host that
// never answers; each next to a quiet measurement taken just before.
func (b *bench) isolation(ctx context.Context) error {
	direct, gateway, err := b.openPair(ctx)
	if err != nil {
		return err
	}
	defer closeAll([]terminal{direct, gateway})
	r := &isolationResult{}
	n := b.cfg.isoKeys
	// The flood runs in a process of its own (see flood.go). The third case
	// floods through a second gateway process: the machine's share of the
	// rise (2 CPUs shared with the flood's sshd, cat and client) without
	// the share of the gateway process itself.
	cases := []struct{ name, side string }{
		{"direct", "direct"}, {"gateway", "gateway"}, {"gateway, flood via another gateway process", "gateway"},
	}
	for i, c := range cases {
		t := direct
		if c.side == "gateway" {
			t = gateway
		}
		b.logf("isolation: %s quiet, %d keys", c.name, n)
		quiet, err := typeKeys(ctx, t, n, b.rng)
		if err != nil {
			return fmt.Errorf("%s quiet: %w", c.name, err)
		}
		floodURL := b.gw.url
		if i == 2 {
			other, err := startGateway(ctx, b.childConfig(), filepath.Join(b.tmp, "gateway-other.log"))
			if err != nil {
				return err
			}
			defer other.stop()
			floodURL = other.url
		}
		b.logf("isolation: %s with a flooding neighbour", c.name)
		if i == 1 {
			if err := b.gw.profStart(ctx, "isolation-flood"); err != nil {
				return err
			}
		}
		fp, err := startFlood(ctx, floodConfig{
			Side: c.side, GatewayURL: floodURL,
			Host: b.login.host, Port: b.login.port, User: b.login.user, Password: b.login.password,
			Path: b.dataPath,
		})
		if err != nil {
			return err
		}
		flooded, err := typeKeys(ctx, t, n, b.rng)
		floodMBps, ferr := fp.stop()
		if err != nil {
			return fmt.Errorf("%s with flood: %w", c.name, err)
		}
		if ferr != nil {
			return ferr
		}
		if i == 1 {
			if err := b.gw.profStop(ctx, "isolation-flood"); err != nil {
				return err
			}
		}
		if err := b.waitSessions(2); err != nil {
			return err
		}
		switch i {
		case 0:
			r.DirectQuiet, r.DirectFlood, r.DirectFloodMBps = summarize(quiet), summarize(flooded), floodMBps
		case 1:
			r.GatewayQuiet, r.GatewayFlood, r.GatewayFloodMBps = summarize(quiet), summarize(flooded), floodMBps
		case 2:
			r.OtherQuiet, r.OtherFlood, r.OtherFloodMBps = summarize(quiet), summarize(flooded), floodMBps
		}
	}

	b.logf("isolation: gateway with a neighbour connecting to a silent host")
	host, err := newSilentHost()
	if err != nil {
		return err
	}
	defer host.close()
	quiet, err := typeKeys(ctx, gateway, n, b.rng)
	if err != nil {
		return fmt.Errorf("gateway quiet (hang): %w", err)
	}
	silent := b.login
	silent.port = host.port()
	id, err := createCredentials(ctx, b.gw.url, silent)
	if err != nil {
		return err
	}
	hanging, err := connectGateway(b.gw.url, id, keyTimeout, false)
	if err != nil {
		return err
	}
	defer hanging.close()
	select {
	case <-host.accepted:
	case <-time.After(keyTimeout):
		return errors.New("the gateway did not connect to the silent host")
	}
	hung, err := typeKeys(ctx, gateway, n, b.rng)
	if err != nil {
		return fmt.Errorf("gateway with hanging neighbour: %w", err)
	}
	select {
	case <-hanging.ready:
		return errors.New("a session to the silent host became ready")
	case <-hanging.gone:
		// The gateway gave up (its SSH timeout) before the keys were typed.
		r.HangEndedEarly = true
	default:
	}
	r.GatewayHangQuiet, r.GatewayHang = summarize(quiet), summarize(hung)
	b.res.Isolation = r
	return nil
}

// sessions opens N sessions at once, direct and then through a fresh
// gateway process, and measures the time until all are ready, the echo
// across them and the gateway's memory and goroutines per session.
func (b *bench) sessions(ctx context.Context) error {
	for _, n := range b.cfg.sessions {
		r := sessionsResult{N: n}
		openTimeout := b.cfg.sshTimeout + 30*time.Second
		keys := max(b.cfg.sessionsKeys, n)

		b.logf("sessions %d: direct, opening", n)
		terms, ready, errs := openMany(ctx, n, b.cfg.maxOpening, openTimeout, b.openDirect)
		r.Direct.ReadySeconds, r.Direct.Opened, r.Direct.OpenErrors = ready.Seconds(), n-len(errs), errorStrings(errs)
		b.logf("sessions %d: direct, %d open after %v; echo, %d keys", n, r.Direct.Opened, ready, keys)
		lat, working, kerrs := echoAcross(ctx, terms, keys, b.rng)
		r.Direct.Echo, r.Direct.Working, r.Direct.EchoErrors = summarize(lat), working, errorStrings(kerrs)
		closeAll(terms)
		if err := b.waitSessions(0); err != nil {
			return err
		}

		if err := b.sessionsGateway(ctx, n, keys, openTimeout, &r); err != nil {
			return err
		}
		b.res.Sessions = append(b.res.Sessions, r)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return nil
}

func (b *bench) sessionsGateway(ctx context.Context, n, keys int, openTimeout time.Duration, r *sessionsResult) (err error) {
	logPath := filepath.Join(b.tmp, fmt.Sprintf("gateway-sessions-%d.log", n))
	g, err := startGateway(ctx, b.childConfig(), logPath)
	if err != nil {
		return err
	}
	defer func() {
		if len(r.Gateway.OpenErrors) > 0 {
			r.Gateway.OpenErrors = append(r.Gateway.OpenErrors, gatewayFailures(logPath)...)
		}
		if serr := g.stop(); serr != nil && err == nil {
			err = serr
		}
	}()
	// Warm up with one session, so that one-time costs are not counted
	// per session; then measure the baseline.
	warm, err := b.openGatewayOn(g)(ctx)
	if err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	if _, err := warm.output().waitForString(ctx, keyTimeout, prompt); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	warm.close()
	httpClient.CloseIdleConnections()
	if err := b.waitSessions(0); err != nil {
		return err
	}
	base, err := g.snapshot(ctx, true)
	if err != nil {
		return err
	}
	r.Gateway.Base = base

	name := fmt.Sprintf("sessions-%d", n)
	if err := g.profStart(ctx, name); err != nil {
		return err
	}
	b.logf("sessions %d: gateway, opening", n)
	terms, ready, errs := openMany(ctx, n, b.cfg.maxOpening, openTimeout, b.openGatewayOn(g))
	r.Gateway.ReadySeconds, r.Gateway.Opened, r.Gateway.OpenErrors = ready.Seconds(), n-len(errs), errorStrings(errs)
	defer func() {
		closeAll(terms)
		if werr := b.waitSessions(0); werr != nil && err == nil {
			err = werr
		}
	}()
	// The credentials were posted over keep-alive connections that a
	// browser would not hold open; close them so that the gateway's
	// figures are the sessions' alone. Then idle for a moment, and measure.
	httpClient.CloseIdleConnections()
	time.Sleep(b.settle())
	if r.Gateway.Idle, err = g.snapshot(ctx, false); err != nil {
		return err
	}
	if err := g.profStop(ctx, name); err != nil {
		return err
	}
	if r.Gateway.IdleAfterGC, err = g.snapshot(ctx, true); err != nil {
		return err
	}
	r.Gateway.perSession(r.Gateway.Opened)
	b.logf("sessions %d: gateway, %d open after %v; echo, %d keys", n, r.Gateway.Opened, ready, keys)
	lat, working, kerrs := echoAcross(ctx, terms, keys, b.rng)
	r.Gateway.Echo, r.Gateway.Working, r.Gateway.EchoErrors = summarize(lat), working, errorStrings(kerrs)
	closeAll(terms)
	terms = nil
	if err := b.waitSessions(0); err != nil {
		return err
	}
	// Sessions end asynchronously in the gateway; give it a moment.
	deadline := time.Now().Add(10 * time.Second)
	for {
		s, err := g.stats(ctx)
		if err != nil {
			return err
		}
		r.Gateway.GoroutinesAfterClose = s.Goroutines
		if s.Goroutines <= base.Goroutines+5 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil
}

// gatewayFailures returns the distinct reasons a gateway log gives for
// terminals that failed or ended with an error, with their counts.
func gatewayFailures(logPath string) []string {
	data, err := os.ReadFile(logPath)
	if err != nil {
		return nil
	}
	counts := map[string]int{}
	var order []string
	for line := range strings.SplitSeq(string(data), "\n") {
		if !strings.Contains(line, `msg="terminal ended"`) || !strings.Contains(line, " err=") ||
			strings.Contains(line, " reason=client_gone") {
			continue
		}
		_, reason, _ := strings.Cut(line, " err=")
		if counts[reason]++; counts[reason] == 1 {
			order = append(order, reason)
		}
	}
	var out []string
	for _, r := range order {
		out = append(out, fmt.Sprintf("gateway log: %d x terminal ended: %s", counts[r], r))
	}
	return out
}

func errorStrings(errs []error) []string {
	var out []string
	seen := map[string]int{}
	for _, e := range errs {
		s := e.Error()
		if seen[s]++; seen[s] == 1 && len(out) < 5 {
			out = append(out, s)
		}
	}
	if len(errs) > len(out) {
		out = append(out, fmt.Sprintf("(%d errors in all)", len(errs)))
	}
	return out
}

// printReport prints the table and writes the JSON file.
func (b *bench) printReport() error {
	b.res.Table = b.res.rows()
	b.res.Meta.LostOpens = lostOpens.Load()
	writeTable(b.stdout, b.res)
	if n := b.res.Meta.LostOpens; n > 0 {
		fmt.Fprintf(b.stdout, "\n(the Go client lost its engine \"open\" event %d times; replayed, see recoverLostOpen)\n", n)
	}
	return writeJSON(b.stdout, b.cfg.jsonPath, b.res)
}

// writeJSON writes v as indented JSON to path, unless path is empty, and
// says so on w.
func writeJSON(w io.Writer, path string, v any) error {
	if path == "" {
		return nil
	}
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nJSON written to %s\n", path)
	return nil
}
