// Command filesbench measures file transfers through the gateway next to
// OpenSSH's sftp talking to the same sshd:
//
//	go run ./files/filesbench [-size 200] [-runs 3]
//
// It needs root and sshd (internal/sshdtest starts one) and OpenSSH's sftp
// client. The gateway (server.New with file transfers on, the product's
// defaults otherwise) runs in a child process, so that its memory is its
// own. For each run it uploads then downloads a file of -size MiB with
// sftp and through the gateway's /files/ endpoints (checking SHA-256 both
// ways), samples the gateway's RSS during the upload, and types into the
// same terminal during it, timing each key's echo. It prints the medians
// as a Markdown table. The sftp times leave out its login, measured by an
// sftp run that only logs in; the gateway's terminal is open already.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing/fstest"
	"time"

	"github.com/gorilla/websocket"

	"github.com/alfresco-ssh/alfresco-ssh/internal/sshdtest"
	"github.com/alfresco-ssh/alfresco-ssh/server"
	"github.com/alfresco-ssh/alfresco-ssh/sshbridge"
)

// childEnv tells a re-executed filesbench to be the gateway.
const childEnv = "ALFRESCO_FILESBENCH_GATEWAY"

func main() {
	if os.Getenv(childEnv) != "" {
		os.Exit(gatewayMain())
	}
	size := flag.Int64("size", 200, "file size in MiB")
	runs := flag.Int("runs", 3, "runs of each measure; the table shows medians")
	flag.Parse()
	if err := bench(*size<<20, *runs); err != nil {
		fmt.Fprintln(os.Stderr, "filesbench:", err)
		os.Exit(1)
	}
}

// gatewayMain serves the gateway on 127.0.0.1:0, prints its address and
// serves until its stdin closes.
func gatewayMain() int {
	srv, err := server.New(server.Config{
		Assets: fstest.MapFS{"templates/index.html": {Data: []byte("{{ credentials_uuid }}")},
			"static/x": {Data: []byte("x")}},
		SSH:    sshbridge.Config{Term: "xterm-256color", Timeout: 10 * time.Second},
		Files:  true,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, nil)),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	go srv.Serve(ln)
	fmt.Println(ln.Addr())
	io.Copy(io.Discard, os.Stdin)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	srv.Shutdown(ctx)
	return 0
}

// gateway is the child process.
type gateway struct {
	cmd   *exec.Cmd
	stdin io.Closer
	url   string
}

func startGateway() (*gateway, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), childEnv+"=1")
	cmd.Stderr = io.Discard
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	var addr [64]byte
	n, err := stdout.Read(addr[:])
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("gateway: %w", err)
	}
	return &gateway{cmd: cmd, stdin: stdin, url: "http://" + strings.TrimSpace(string(addr[:n]))}, nil
}

func (g *gateway) stop() {
	g.stdin.Close()
	g.cmd.Wait()
}

// rss returns the gateway's resident set size in bytes.
func (g *gateway) rss() uint64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", g.cmd.Process.Pid))
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// terminal is a session through the gateway, over a bare Engine.IO
// websocket: its output arrives on out.
type terminal struct {
	c     *websocket.Conn
	wmu   sync.Mutex
	token string
	out   chan string
	done  chan struct{}
}

func openTerminal(g *gateway, sshd *sshdtest.Server) (*terminal, error) {
	body, _ := json.Marshal(map[string]any{"hostname": sshd.Host, "port": sshd.Port, "username": sshd.User, "password": sshd.Password})
	res, err := http.Post(g.url+"/create-credentials", "application/json", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	var created struct {
		ID string `json:"connection_uuid"`
	}
	json.NewDecoder(res.Body).Decode(&created)
	res.Body.Close()
	c, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(g.url, "http")+"/socket.io/?EIO=4&transport=websocket", nil)
	if err != nil {
		return nil, err
	}
	t := &terminal{c: c, out: make(chan string, 1024), done: make(chan struct{})}
	ready := make(chan string, 1)
	go t.read(created.ID, ready)
	select {
	case t.token = <-ready:
	case <-t.done:
		return nil, errors.New("terminal ended before connection-ready")
	case <-time.After(20 * time.Second):
		c.Close()
		return nil, errors.New("no connection-ready")
	}
	if t.token == "" {
		c.Close()
		return nil, errors.New("connection-ready without a files_token")
	}
	return t, t.expect("$ ", 10*time.Second)
}

func (t *terminal) send(p string) error {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	return t.c.WriteMessage(websocket.TextMessage, []byte(p))
}

// read handles the server's packets until the connection ends.
func (t *terminal) read(id string, ready chan<- string) {
	defer close(t.done)
	for {
		_, b, err := t.c.ReadMessage()
		if err != nil {
			return
		}
		p := string(b)
		switch {
		case p == "2":
			t.send("3")
		case strings.HasPrefix(p, "0{"):
			t.send("40/ssh,")
		case strings.HasPrefix(p, "40/ssh,{"):
			t.send(`42/ssh,["start-session",{"credentials_uuid":"` + id + `"}]`)
		case strings.HasPrefix(p, "42/ssh,"):
			var ev []json.RawMessage
			if json.Unmarshal([]byte(p[len("42/ssh,"):]), &ev) != nil || len(ev) != 2 {
				continue
			}
			var payload struct {
				Output string `json:"output"`
				Token  string `json:"files_token"`
			}
			json.Unmarshal(ev[1], &payload)
			switch string(ev[0]) {
			case `"connection-ready"`:
				ready <- payload.Token
			case `"ssh-output"`:
				t.out <- payload.Output
			}
		}
	}
}

// expect waits until the output holds want.
func (t *terminal) expect(want string, timeout time.Duration) error {
	deadline := time.After(timeout)
	var got strings.Builder
	for !strings.Contains(got.String(), want) {
		select {
		case s := <-t.out:
			got.WriteString(s)
		case <-t.done:
			return errors.New("terminal ended")
		case <-deadline:
			return fmt.Errorf("no %q in the output within %v", want, timeout)
		}
	}
	return nil
}

// echo types one key and returns the time until its echo.
func (t *terminal) echo(key byte) (time.Duration, error) {
	start := time.Now()
	if err := t.send(`42/ssh,["ssh-input",{"input":"` + string(key) + `"}]`); err != nil {
		return 0, err
	}
	if err := t.expect(string(key), 10*time.Second); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// typeWhile types keys until stop is closed (at least min of them), each
// on an empty line (Ctrl-U between keys), and returns their echo times.
func (t *terminal) typeWhile(stop <-chan struct{}, min int) ([]time.Duration, error) {
	var times []time.Duration
	for i := 0; ; i++ {
		select {
		case <-stop:
			if len(times) >= min {
				return times, nil
			}
		default:
		}
		d, err := t.echo(byte('0' + i%10)) // digits: the prompt has none
		if err != nil {
			return times, err
		}
		times = append(times, d)
		t.send(`42/ssh,["ssh-input",{"input":"\u0015"}]`)
		time.Sleep(20 * time.Millisecond) // a typist's pace; the line redraw arrives meanwhile
		drain(t.out)
	}
}

func drain(c <-chan string) {
	for {
		select {
		case <-c:
		default:
			return
		}
	}
}

// upload posts the local file into dir through the gateway, one multipart
// part streamed from disk.
func upload(g *gateway, token, local, dir string) error {
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		f, err := os.Open(local)
		if err == nil {
			var part io.Writer
			if part, err = mw.CreateFormFile("file", filepath.Base(local)); err == nil {
				_, err = io.Copy(part, f)
			}
			f.Close()
		}
		if err == nil {
			err = mw.Close()
		}
		pw.CloseWithError(err)
	}()
	req, _ := http.NewRequest("POST", g.url+"/files/upload?path="+url.QueryEscape(dir), pr)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("upload: %d %s", res.StatusCode, b)
	}
	return nil
}

// download fetches the remote file through the gateway and returns its
// SHA-256.
func download(g *gateway, token, remote string) (string, error) {
	req, _ := http.NewRequest("GET", g.url+"/files/download?path="+url.QueryEscape(remote), nil)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return "", fmt.Errorf("download: %d", res.StatusCode)
	}
	h := sha256.New()
	_, err = io.Copy(h, res.Body)
	return hex.EncodeToString(h.Sum(nil)), err
}

// sftpBatch runs OpenSSH's sftp with a batch command, logging in with the
// password through SSH_ASKPASS, with the cipher Go's x/crypto prefers so
// that both sides encrypt alike.
func sftpBatch(sshd *sshdtest.Server, askpass, command string) error {
	// Commands on stdin rather than -b, which would forbid the password.
	cmd := exec.Command("sftp", "-P", strconv.Itoa(sshd.Port),
		"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
		"-o", "Ciphers=aes128-gcm@openssh.com", "-o", "PubkeyAuthentication=no",
		sshd.User+"@"+sshd.Host)
	cmd.Stdin = strings.NewReader(command + "\n")
	cmd.Env = append(os.Environ(), "SSH_ASKPASS="+askpass, "SSH_ASKPASS_REQUIRE=force", "BENCH_PASSWORD="+sshd.Password)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // no terminal to ask on
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("sftp %q: %w: %s", command, err, out)
	}
	return nil
}

func fileDigest(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	_, err = io.Copy(h, f)
	return hex.EncodeToString(h.Sum(nil)), err
}

// timed runs f and returns MB/s for size bytes, not counting overhead
// (the time sftp takes to log in and out).
func timed(size int64, overhead time.Duration, f func() error) (float64, error) {
	start := time.Now()
	if err := f(); err != nil {
		return 0, err
	}
	return float64(size) / 1e6 / (time.Since(start) - overhead).Seconds(), nil
}

type results struct {
	sftpUp, sftpDown, gwUp, gwDown []float64
	rssGrowth                      []float64 // MiB
	idle, busy                     []time.Duration
}

func bench(size int64, runs int) error {
	if _, err := exec.LookPath("sftp"); err != nil {
		return errors.New("needs OpenSSH's sftp client")
	}
	sshd, err := sshdtest.Launch()
	if err != nil {
		return err
	}
	defer sshd.Close()
	u, err := user.Lookup(sshd.User)
	if err != nil {
		return err
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	remote, err := os.MkdirTemp(u.HomeDir, "filesbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(remote)
	if err := os.Chown(remote, uid, gid); err != nil {
		return err
	}
	local, err := os.MkdirTemp("", "filesbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(local)
	askpass := filepath.Join(local, "askpass")
	if err := os.WriteFile(askpass, []byte("#!/bin/sh\nprintf '%s\\n' \"$BENCH_PASSWORD\"\n"), 0o700); err != nil {
		return err
	}
	data := filepath.Join(local, "data.bin")
	if err := writeRandom(data, size); err != nil {
		return err
	}
	want, err := fileDigest(data)
	if err != nil {
		return err
	}

	g, err := startGateway()
	if err != nil {
		return err
	}
	defer g.stop()
	term, err := openTerminal(g, sshd)
	if err != nil {
		return err
	}
	defer term.c.Close()

	var r results
	for run := 1; run <= runs; run++ {
		fmt.Fprintf(os.Stderr, "run %d of %d\n", run, runs)
		start := time.Now()
		if err := sftpBatch(sshd, askpass, "pwd"); err != nil {
			return err
		}
		login := time.Since(start)
		up, err := timed(size, login, func() error {
			return sftpBatch(sshd, askpass, fmt.Sprintf("put %s %s/sftp.bin", data, remote))
		})
		if err != nil {
			return err
		}
		down, err := timed(size, login, func() error {
			return sftpBatch(sshd, askpass, fmt.Sprintf("get %s/sftp.bin %s/back.bin", remote, local))
		})
		if err != nil {
			return err
		}
		if got, _ := fileDigest(filepath.Join(local, "back.bin")); got != want {
			return errors.New("sftp: the file came back changed")
		}
		r.sftpUp, r.sftpDown = append(r.sftpUp, up), append(r.sftpDown, down)

		idle, err := term.typeWhile(closed, 100)
		if err != nil {
			return err
		}
		r.idle = append(r.idle, idle...)
		runtime.GC()
		base := g.rss()
		stop := make(chan struct{})
		var peak uint64
		var sampled sync.WaitGroup
		sampled.Go(func() {
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			for {
				peak = max(peak, g.rss())
				select {
				case <-stop:
					return
				case <-tick.C:
				}
			}
		})
		var busy []time.Duration
		var typeErr error
		var typed sync.WaitGroup
		typed.Go(func() { busy, typeErr = term.typeWhile(stop, 1) })
		up, err = timed(size, 0, func() error { return upload(g, term.token, data, remote) })
		close(stop)
		sampled.Wait()
		typed.Wait()
		if err != nil {
			return err
		}
		if typeErr != nil {
			return typeErr
		}
		r.busy = append(r.busy, busy...)
		r.rssGrowth = append(r.rssGrowth, float64(int64(peak)-int64(base))/(1<<20))
		if got, _ := fileDigest(filepath.Join(remote, "data.bin")); got != want {
			return errors.New("gateway: the uploaded file differs")
		}
		var got string
		down, err = timed(size, 0, func() (err error) {
			got, err = download(g, term.token, remote+"/data.bin")
			return err
		})
		if err != nil {
			return err
		}
		if got != want {
			return errors.New("gateway: the downloaded file differs")
		}
		r.gwUp, r.gwDown = append(r.gwUp, up), append(r.gwDown, down)
	}
	report(r, size, runs)
	return nil
}

var closed = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func writeRandom(p string, size int64) error {
	f, err := os.Create(p)
	if err != nil {
		return err
	}
	if _, err := io.CopyN(f, rand.Reader, size); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func quantile(ds []time.Duration, q float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[int(q*float64(len(s)-1))]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d)/1e6) }

func report(r results, size int64, runs int) {
	sshdVersion, _ := exec.Command("/usr/sbin/sshd", "-V").CombinedOutput()
	version, _, _ := strings.Cut(string(sshdVersion), ",")
	fmt.Printf("File transfers, %d MiB, median of %d runs (%s, %s, %d CPUs; sftp with aes128-gcm, as the gateway negotiates)\n\n",
		size>>20, runs, runtime.Version(), strings.TrimSpace(version), runtime.NumCPU())
	fmt.Println("| measure | sftp direct | gateway |")
	fmt.Println("| --- | --: | --: |")
	fmt.Printf("| upload | %.0f MB/s | %.0f MB/s |\n", median(r.sftpUp), median(r.gwUp))
	fmt.Printf("| download | %.0f MB/s | %.0f MB/s |\n", median(r.sftpDown), median(r.gwDown))
	fmt.Printf("| gateway RSS growth during the upload | | %.1f MiB |\n", median(r.rssGrowth))
	fmt.Printf("| echo p50 / p99, idle terminal (%d keys) | | %s / %s ms |\n", len(r.idle), ms(quantile(r.idle, 0.5)), ms(quantile(r.idle, 0.99)))
	fmt.Printf("| echo p50 / p99, same terminal during the upload (%d keys) | | %s / %s ms |\n", len(r.busy), ms(quantile(r.busy, 0.5)), ms(quantile(r.busy, 0.99)))
}
