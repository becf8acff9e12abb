package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	rpprof "runtime/pprof"
	"runtime/trace"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing/fstest"
	"time"

	"github.com/alfresco-ssh/alfresco-ssh/internal/gcfloor"
	"github.com/alfresco-ssh/alfresco-ssh/internal/spareprocs"
	"github.com/alfresco-ssh/alfresco-ssh/server"
	"github.com/alfresco-ssh/alfresco-ssh/sshbridge"
)

// The gateway under test runs in a process of its own, so that its CPU time,
// memory and goroutines are not mixed with the benchmark's clients. The
// bench binary re-executes itself with childEnv set to a JSON childConfig;
// main (and TestMain in the test binary) then runs gatewayMain instead.
const childEnv = "ALFRESCO_BENCH_GATEWAY"

// childConfig is what the parent tells a gateway process.
type childConfig struct {
	// SSHTimeout is the gateway's SSH connect+login timeout.
	SSHTimeout time.Duration `json:"ssh_timeout"`
	// ProfileDir, when set, is where /prof/stop writes profiles; block and
	// mutex profiling are switched on.
	ProfileDir string `json:"profile_dir,omitempty"`
	// Debug logs at debug level instead of the product's default, info.
	Debug bool `json:"debug,omitempty"`
	// Env is added to the process's environment (GOGC=..., GOMAXPROCS=...).
	Env []string `json:"env,omitempty"`
}

// gatewayMain runs the gateway (server.New + Serve on 127.0.0.1:0, the
// product's defaults) plus a debug listener, prints "ready <gateway addr>
// <debug addr>" on stdout, and serves until SIGTERM or until its stdin
// closes (the parent is gone). It returns the exit status.
func gatewayMain(rawCfg string) int {
	var cc childConfig
	if err := json.Unmarshal([]byte(rawCfg), &cc); err != nil {
		fmt.Fprintln(os.Stderr, "bench gateway: bad config:", err)
		return 2
	}
	if cc.ProfileDir != "" {
		runtime.SetBlockProfileRate(10000) // one sample per 10 µs blocked
		runtime.SetMutexProfileFraction(10)
		// A sample per 4 KiB allocated: per-session heap is tens of KiB,
		// which the default rate (512 KiB) cannot attribute.
		runtime.MemProfileRate = 4096
	}
	// The product logs at info level as text to stderr; so does this
	// process (the parent sends stderr to a file).
	level := slog.LevelInfo
	if cc.Debug {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	srv, err := server.New(server.Config{
		Assets: fstest.MapFS{
			"templates/index.html": {Data: []byte("<!doctype html><title>bench</title><p>{{ credentials_uuid }}</p>\n")},
			"static/bench.txt":     {Data: []byte("bench\n")},
		},
		SSH:    sshbridge.Config{Term: "xterm-256color", Timeout: cc.SSHTimeout},
		Logger: log,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench gateway:", err)
		return 1
	}
	// As the command does (--gc-heap-floor-mib, default 64, or its
	// environment variable, which -gateway-env can set). A GOGC in
	// -gateway-env is the least it sets; GOGC=off turns it off.
	floor := uint64(gcfloor.DefaultFloor)
	if mib, err := strconv.ParseUint(os.Getenv("ALFRESCO_SSH_GC_HEAP_FLOOR_MIB"), 10, 32); err == nil {
		floor = mib << 20
	}
	defer gcfloor.Start(floor, srv.OutputBytes)()
	spare := spareprocs.Default // As --spare-procs does.
	if n, err := strconv.Atoi(os.Getenv("ALFRESCO_SSH_SPARE_PROCS")); err == nil {
		spare = n
	}
	defer spareprocs.Set(spare)()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench gateway:", err)
		return 1
	}
	dln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench gateway:", err)
		return 1
	}
	dbg := &http.Server{Handler: debugMux(cc.ProfileDir)}
	go dbg.Serve(dln) // ends when the process exits

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	fmt.Printf("ready %s %s\n", ln.Addr(), dln.Addr())

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() { // the parent closes our stdin, or dies
		io.Copy(io.Discard, os.Stdin)
		stop()
	}()
	select {
	case err := <-serveErr:
		fmt.Fprintln(os.Stderr, "bench gateway: serve:", err)
		return 1
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		fmt.Fprintln(os.Stderr, "bench gateway: shutdown:", err)
		return 1
	}
	<-serveErr
	return 0
}

// gatewayStats is what the debug listener's /stats reports.
type gatewayStats struct {
	Goroutines int    `json:"goroutines"`
	HeapInuse  uint64 `json:"heap_inuse"`
	HeapAlloc  uint64 `json:"heap_alloc"`
	StackInuse uint64 `json:"stack_inuse"`
	Sys        uint64 `json:"sys"`
	NumGC      uint32 `json:"num_gc"`
}

// debugMux serves pprof, /stats, /gc and /prof/{start,stop}?name=NAME, which
// write NAME.cpu.pprof (CPU between start and stop) and NAME.heap,
// .goroutine, .block and .mutex snapshots at stop (the block and mutex
// profiles also at start, for pprof -diff_base); with trace=1, start also
// records an execution trace, NAME.trace.
func debugMux(profileDir string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/stats", func(w http.ResponseWriter, r *http.Request) {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		json.NewEncoder(w).Encode(gatewayStats{
			Goroutines: runtime.NumGoroutine(),
			HeapInuse:  ms.HeapInuse,
			HeapAlloc:  ms.HeapAlloc,
			StackInuse: ms.StackInuse,
			Sys:        ms.Sys,
			NumGC:      ms.NumGC,
		})
	})
	mux.HandleFunc("/gc", func(w http.ResponseWriter, r *http.Request) {
		runtime.GC()
		debug.FreeOSMemory()
	})
	var mu sync.Mutex
	var cpuFile, traceFile *os.File
	snapshot := func(name, kind string) error {
		f, err := os.Create(filepath.Join(profileDir, name+"."+kind+".pprof"))
		if err != nil {
			return err
		}
		defer f.Close()
		if kind == "heap" {
			// The heap profile is as of the last collection; the second
			// one also empties the sync.Pools, which are not sessions'.
			runtime.GC()
			runtime.GC()
		}
		return rpprof.Lookup(kind).WriteTo(f, 0)
	}
	mux.HandleFunc("/prof/start", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		name := r.URL.Query().Get("name")
		if profileDir == "" || name == "" || strings.ContainsAny(name, `/\`) || cpuFile != nil {
			http.Error(w, "profiling off, bad name or already on", http.StatusBadRequest)
			return
		}
		for _, kind := range []string{"block", "mutex"} {
			if err := snapshot(name+".start", kind); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
		}
		f, err := os.Create(filepath.Join(profileDir, name+".cpu.pprof"))
		if err == nil {
			if err = rpprof.StartCPUProfile(f); err != nil {
				f.Close()
			}
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		cpuFile = f
		if r.URL.Query().Get("trace") == "1" {
			tf, err := os.Create(filepath.Join(profileDir, name+".trace"))
			if err == nil {
				if err = trace.Start(tf); err != nil {
					tf.Close()
				} else {
					traceFile = tf
				}
			}
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
			}
		}
	})
	mux.HandleFunc("/prof/stop", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		name := r.URL.Query().Get("name")
		if cpuFile == nil || name == "" || strings.ContainsAny(name, `/\`) {
			http.Error(w, "not profiling or bad name", http.StatusBadRequest)
			return
		}
		rpprof.StopCPUProfile()
		cpuFile.Close()
		cpuFile = nil
		if traceFile != nil {
			trace.Stop()
			traceFile.Close()
			traceFile = nil
		}
		for _, kind := range []string{"heap", "goroutine", "block", "mutex"} {
			if err := snapshot(name, kind); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
		}
	})
	return mux
}

// gatewayProc is a running gateway process, seen from the parent.
type gatewayProc struct {
	cmd      *exec.Cmd
	stdin    io.WriteCloser
	done     chan struct{} // closed when the process has exited
	waitErr  error
	url      string // http://127.0.0.1:port
	debugURL string
	logPath  string
	profile  bool
}

// startGateway starts a gateway process; its log goes to logPath.
func startGateway(ctx context.Context, cc childConfig, logPath string) (*gatewayProc, error) {
	logFile, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	cmd, stdin, stdout, err := startSelf(childEnv, cc, cc.Env, logFile)
	if err != nil {
		return nil, err
	}
	g := &gatewayProc{cmd: cmd, stdin: stdin, done: make(chan struct{}), logPath: logPath, profile: cc.ProfileDir != ""}
	go func() {
		g.waitErr = cmd.Wait()
		close(g.done)
	}()
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- s
		io.Copy(io.Discard, stdout)
	}()
	select {
	case s := <-line:
		f := strings.Fields(s)
		if len(f) != 3 || f[0] != "ready" {
			g.stop()
			return nil, fmt.Errorf("gateway process did not start (said %q); log in %s", s, logPath)
		}
		g.url, g.debugURL = "http://"+f[1], "http://"+f[2]
		return g, nil
	case <-time.After(30 * time.Second):
	case <-ctx.Done():
	}
	g.stop()
	return nil, fmt.Errorf("gateway process did not start in time; log in %s", logPath)
}

func (g *gatewayProc) pid() int { return g.cmd.Process.Pid }

// stop shuts the gateway down gracefully (SIGTERM), killing it after 15 s.
func (g *gatewayProc) stop() error {
	g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-g.done:
	case <-time.After(15 * time.Second):
		g.cmd.Process.Kill()
		<-g.done
		return errors.New("gateway did not stop within 15s; killed")
	}
	g.stdin.Close()
	var ee *exec.ExitError
	if errors.As(g.waitErr, &ee) {
		return fmt.Errorf("gateway exited with %v; log in %s", g.waitErr, g.logPath)
	}
	return g.waitErr
}

// stats asks the gateway for its runtime statistics.
func (g *gatewayProc) stats(ctx context.Context) (gatewayStats, error) {
	var s gatewayStats
	b, err := g.get(ctx, "/stats")
	if err == nil {
		err = json.Unmarshal(b, &s)
	}
	return s, err
}

// gc makes the gateway collect garbage and return free memory to the OS.
func (g *gatewayProc) gc(ctx context.Context) error {
	_, err := g.get(ctx, "/gc")
	return err
}

// snapshot reads the gateway's RSS and runtime statistics, after a forced
// garbage collection when gc is set.
func (g *gatewayProc) snapshot(ctx context.Context, gc bool) (snapshot, error) {
	if gc {
		if err := g.gc(ctx); err != nil {
			return snapshot{}, err
		}
	}
	st, err := g.stats(ctx)
	if err != nil {
		return snapshot{}, err
	}
	rss, err := procRSS(g.pid())
	if err != nil {
		return snapshot{}, err
	}
	return snapshot{RSS: rss, Goroutines: st.Goroutines, HeapInuse: st.HeapInuse, StackInuse: st.StackInuse}, nil
}

// profStart starts profiling the phase name; a no-op unless profiling.
// Short phases also get an execution trace.
func (g *gatewayProc) profStart(ctx context.Context, name string) error {
	if !g.profile {
		return nil
	}
	q := "/prof/start?name=" + name
	if name == "echo" || name == "isolation-flood" {
		q += "&trace=1"
	}
	_, err := g.get(ctx, q)
	return err
}

// profStop ends profiling the phase name and writes its profiles.
func (g *gatewayProc) profStop(ctx context.Context, name string) error {
	if !g.profile {
		return nil
	}
	_, err := g.get(ctx, "/prof/stop?name="+name)
	return err
}

func (g *gatewayProc) get(ctx context.Context, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.debugURL+path, nil)
	if err != nil {
		return nil, err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err == nil && res.StatusCode != http.StatusOK {
		err = fmt.Errorf("gateway debug %s: %s: %s", path, res.Status, strings.TrimSpace(string(b)))
	}
	return b, err
}
