package lightssh_test

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/crypto/ssh"

	"github.com/alfresco-ssh/alfresco-ssh/internal/lightssh"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const waitTimeout = 10 * time.Second

// shellOutput is what a shell prints, read by a goroutine of its own so the
// test can wait for it with a deadline.
type shellOutput struct {
	chunks chan []byte
	got    []byte
}

// waitFor reads until the output holds want, and returns (and forgets) the
// output through it.
func (o *shellOutput) waitFor(t *testing.T, want string) string {
	t.Helper()
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	for !bytes.Contains(o.got, []byte(want)) {
		select {
		case b, ok := <-o.chunks:
			if !ok {
				t.Fatalf("output ended before %q; got %d bytes ending %q", want, len(o.got), o.got[max(0, len(o.got)-80):])
			}
			o.got = append(o.got, b...)
		case <-timer.C:
			t.Fatalf("timed out waiting for %q; got %d bytes ending %q", want, len(o.got), o.got[max(0, len(o.got)-80):])
		}
	}
	i := bytes.Index(o.got, []byte(want)) + len(want)
	s := string(o.got[:i])
	o.got = o.got[i:]
	return s
}

// openShell logs in to srv and starts a shell on a PTY.
func openShell(t *testing.T, srv *lightssh.Server) (io.Writer, *shellOutput) {
	t.Helper()
	client, err := ssh.Dial("tcp", srv.Addr().String(), &ssh.ClientConfig{
		User: "u", Auth: []ssh.AuthMethod{ssh.Password("pw")},
		HostKeyCallback: ssh.FixedHostKey(srv.HostKey()), Timeout: waitTimeout,
	})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	sess, err := client.NewSession()
	if err != nil {
		t.Fatalf("session: %v", err)
	}
	if err := sess.RequestPty("xterm", 24, 80, ssh.TerminalModes{ssh.ECHO: 1}); err != nil {
		t.Fatalf("pty: %v", err)
	}
	stdin, _ := sess.StdinPipe()
	stdout, _ := sess.StdoutPipe()
	if err := sess.Shell(); err != nil {
		t.Fatalf("shell: %v", err)
	}
	o := &shellOutput{chunks: make(chan []byte, 16)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(o.chunks)
		buf := make([]byte, 32<<10)
		for {
			n, err := stdout.Read(buf)
			if n > 0 {
				o.chunks <- bytes.Clone(buf[:n])
			}
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		client.Close()
		for range o.chunks { // let the reader finish
		}
		<-done
	})
	return stdin, o
}

func TestPromptAndStream(t *testing.T) {
	const prompt = "test$ "
	srv, err := lightssh.Listen("127.0.0.1:0", lightssh.Options{User: "u", Password: "pw", Prompt: prompt})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	in, out := openShell(t, srv)
	if got := out.waitFor(t, prompt); got != prompt { // short: the stream has not run yet
		t.Fatalf("start: got %q, want the prompt %q", got, prompt)
	}
	io.WriteString(in, "size\r")
	if got, want := out.waitFor(t, prompt), "size\r\n24 80\r\n"+prompt; got != want {
		t.Fatalf("size: got %q, want %q", got, want)
	}
	text := string(lightssh.Text())
	for _, rate := range []string{"0", "1000000"} {
		t.Run("rate "+rate, func(t *testing.T) {
			io.WriteString(in, "stream "+rate+"\r")
			out.waitFor(t, "stream "+rate+"\r\n")
			// Two rounds of the text, byte-exact.
			got := out.waitFor(t, text[:100]) + out.waitFor(t, text[:100]) + out.waitFor(t, text[:100])
			if want := text + text + text[:100]; got != want {
				t.Fatalf("streamed text differs from Text (got %d bytes, want %d)", len(got), len(want))
			}
			io.WriteString(in, "x") // stops the stream; not echoed
			out.waitFor(t, "\r\n"+prompt)
			io.WriteString(in, "size\r")
			if got, want := out.waitFor(t, "24 80\r\n"+prompt), "size\r\n24 80\r\n"+prompt; !strings.HasSuffix(got, want) {
				t.Fatalf("after the stream: got %q, want it to end in %q", got[max(0, len(got)-200):], want)
			}
		})
	}
	io.WriteString(in, "stream x\r")
	if got, want := out.waitFor(t, prompt), "stream x\r\nstream: bad rate \"x\"\r\n"+prompt; got != want {
		t.Fatalf("bad rate: got %q, want %q", got[:min(len(got), 200)], want)
	}
}
