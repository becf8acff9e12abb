package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/alfresco-ssh/alfresco-ssh/internal/sshdtest"
)

// Resume (PROTOCOL.md, Extensions) with socket.io-client from Node
// (resumeclient.mjs): a remote prints numbered lines while the
// connection is cut for 5 s by a TCP proxy; the client resumes, on
// either transport, and shows every line exactly once, in order.

// dropFor is how long the network is down.
const dropFor = 5 * time.Second

type resumeEvent struct {
	Event      string  `json:"event"`
	At         int64   `json:"at"`
	Transport  string  `json:"transport"`
	Output     string  `json:"output"`
	Duplicates int     `json:"duplicates"`
	Resumes    int     `json:"resumes"`
	Node       *string `json:"node"`
	Error      string  `json:"error"`
}

var replayedBytes = regexp.MustCompile(`msg="terminal resumed".* replayed_bytes=(\d+)`)

func TestResumeAcrossDrops(t *testing.T) {
	dir := e2eDir(t)
	sshd := sshdtest.Start(t)
	for _, tc := range []struct {
		name        string
		first, then []string
	}{
		{"websocket", []string{"websocket"}, []string{"websocket"}},
		{"polling", []string{"polling"}, []string{"polling"}},
		{"websocket then polling", []string{"websocket"}, []string{"polling"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := startGateway(t, "--allowed-hosts", "*") // the proxy has a port of its own
			proxy := startTCPProxy(t, strings.TrimPrefix(g.url, "http://"))
			tag := randomTag()
			const lines = 400
			in, _ := json.Marshal(numberedInput(proxy.url(), g.createCredentials(t, login(sshd)), tag, lines, tc.first, tc.then))
			end, resumedAfter := driveResume(t, dir, in, proxy)
			if end.Error != "" || end.Resumes == 0 || end.Duplicates != 0 {
				t.Fatalf("client ended with error %q after %d resumes and %d duplicates; want no error, a resume, no duplicate\n%s", end.Error, end.Resumes, end.Duplicates, g.logs)
			}
			checkNumbered(t, end.Output, tag, lines)
			var replayed []string
			for _, m := range replayedBytes.FindAllStringSubmatch(g.logs.String(), -1) {
				replayed = append(replayed, m[1])
			}
			t.Logf("resumed %v after the network came back (%d resumes, client retries every 250 ms); replayed bytes %v", resumedAfter, end.Resumes, replayed)
		})
	}
}

// numberedInput is the input of resumeclient.mjs for a session that
// prints lines tag-1 to tag-lines, 20 ms apart, and is cut after the
// 20th.
func numberedInput(url, credentials, tag string, lines int, first, then []string) map[string]any {
	return map[string]any{
		"url":              url,
		"credentials":      credentials,
		"transports":       first,
		"resumeTransports": then,
		"command":          fmt.Sprintf(`for i in $(seq 1 %d); do echo %s-$i; sleep 0.02; done; echo DONE-%s-$((2+2))`, lines, tag, tag),
		"cutAt":            tag + "-20\r\n",
		"done":             "DONE-" + tag + "-4",
		"timeoutMs":        60000,
	}
}

// driveResume runs resumeclient.mjs with the input in, cutting the proxy
// for dropFor when the client says so; it returns the client's end event
// and, for each resume, how long after the network came back it came.
func driveResume(t *testing.T, dir string, in []byte, proxy *tcpProxy) (resumeEvent, []time.Duration) {
	t.Helper()
	cmd := exec.Command("node", filepath.Join(dir, "resumeclient.mjs"))
	cmd.Stdin = strings.NewReader(string(in))
	cmd.Stderr = &strings.Builder{}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var restored time.Time
	var end resumeEvent
	var resumedAfter []time.Duration
	sc := bufio.NewScanner(out)
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var e resumeEvent
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("client printed %q: %v", sc.Text(), err)
		}
		switch e.Event {
		case "cut":
			proxy.cut()
			time.AfterFunc(dropFor, proxy.restore) // the drop itself, not a wait
			restored = time.Now().Add(dropFor)
		case "resumed":
			resumedAfter = append(resumedAfter, time.UnixMilli(e.At).Sub(restored))
		case "end":
			end = e
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("client: %v\n%s", err, cmd.Stderr)
	}
	return end, resumedAfter
}

// checkNumbered checks that output shows the lines tag-1 to tag-lines
// once each, in order.
func checkNumbered(t *testing.T, output, tag string, lines int) {
	t.Helper()
	checkCounted(t, strings.Split(output, "\r\n"), tag+"-", lines)
}

// checkCounted checks that, of lines, those that start with prefix are
// prefix1 to prefix<n>, once each, in order.
func checkCounted(t *testing.T, lines []string, prefix string, n int) {
	t.Helper()
	var got []string
	for _, l := range lines {
		if rest, ok := strings.CutPrefix(l, prefix); ok {
			got = append(got, rest)
		}
	}
	var want []string
	for i := 1; i <= n; i++ {
		want = append(want, fmt.Sprint(i))
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("got lines %v, want 1 to %d once each, in order", got, n)
	}
}

// TestKeepaliveFrozenRemote: a remote whose sshd stops (the shell sends
// SIGSTOP to its sshd process, which carries the connection: a paused
// host) ends the session with the red message within interval × (count
// + 1); a healthy idle one lives on through the probes.
func TestKeepaliveFrozenRemote(t *testing.T) {
	sshd := sshdtest.Start(t)
	t.Cleanup(func() { sshd.Signal(syscall.SIGCONT) })
	g := startGateway(t, "--ssh-keepalive-interval", "1s", "--ssh-keepalive-count", "2")
	idle := runClient(t, scenario{URL: g.url, Start: map[string]any{"credentials_uuid": g.createCredentials(t, login(sshd))},
		Steps: []step{{Send: "echo ready-$((1+1))\n"}, {Expect: "ready-2"}, {WaitMs: 4000}, {Send: "echo alive-$((1+1))\n"}, {Expect: "alive-2"}}})
	if p := idle.Problem(); p != "" || idle.Closing != nil {
		t.Fatalf("healthy idle session: %s, closing %+v", p, idle.Closing)
	}
	r := runClient(t, scenario{URL: g.url, Start: map[string]any{"credentials_uuid": g.createCredentials(t, login(sshd))},
		Steps: []step{{Send: "echo up-$((1+1))\n"}, {Expect: "up-2"}, {Send: "kill -STOP $PPID\n"}}, WaitEnd: true, TimeoutMs: 20000})
	if r.Closing == nil || r.Closing.Output != "\r\n\x1b[91mConnection closed: the remote host stopped responding.\x1b[0m\r\n" {
		t.Fatalf("closing message: got %+v, want the remote host stopped responding (%s)", r.Closing, r.Problem())
	}
	t.Logf("the session took %d ms, from connect to the end (bound after the freeze: 3 s)", r.ElapsedMs)
}
