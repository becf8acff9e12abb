package sshbridge_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/crypto/ssh"

	"github.com/alfresco-ssh/alfresco-ssh/internal/lightssh"
	"github.com/alfresco-ssh/alfresco-ssh/internal/syncbuf"
	"github.com/alfresco-ssh/alfresco-ssh/sshbridge"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestTargetAddr(t *testing.T) {
	tests := []struct {
		host string
		port int
		want string
	}{
		{"example.com", 22, "example.com:22"},
		{"10.0.0.1", 2222, "10.0.0.1:2222"},
		{"::1", 22, "[::1]:22"},
		{"[::1]", 22, "[::1]:22"},
		{"[fe80::1%eth0]", 22, "[fe80::1%eth0]:22"},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			got := sshbridge.Target{Host: tt.host, Port: tt.port}.Addr()
			if got != tt.want {
				t.Errorf("Addr() = %q, want %q", got, tt.want)
			}
		})
	}
}

// checkShell types into the session and checks the echo and a command's
// output arrive through Session.Read.
func checkShell(t *testing.T, sess *sshbridge.Session, size sshbridge.WindowSize) {
	t.Helper()
	out := readOutput(t, sess, sess)
	// A partial line is echoed before Enter.
	if _, err := sess.Write([]byte("hello")); err != nil {
		t.Fatalf("Write: got error %v, want nil", err)
	}
	out.waitFor(t, "hello")
	if _, err := sess.Write([]byte(" world\rsize\r")); err != nil {
		t.Fatalf("Write: got error %v, want nil", err)
	}
	want := fmt.Sprintf("hello world\r\nsize\r\n%d %d\r\n", size.Rows, size.Cols)
	if got := out.waitFor(t, want); got != want {
		t.Errorf("output: got %q, want %q", got, want)
	}
}

func TestDialAuth(t *testing.T) {
	const password = "s3cret-Pa55word"
	tests := []struct {
		name     string
		opts     serverOptions
		user     string
		password string
		wantErr  error
		// wantAnswers is how many keyboard-interactive prompts the client
		// answered.
		wantAnswers int32
	}{
		{
			name:        "password",
			opts:        serverOptions{User: "alice", Password: password},
			user:        "alice",
			password:    password,
			wantAnswers: 0,
		},
		{
			name:        "wrong password",
			opts:        serverOptions{User: "alice", Password: password},
			user:        "alice",
			password:    "wrong-" + password,
			wantErr:     sshbridge.ErrAuth,
			wantAnswers: 0,
		},
		{
			name:        "wrong user",
			opts:        serverOptions{User: "alice", Password: password},
			user:        "mallory",
			password:    password,
			wantErr:     sshbridge.ErrAuth,
			wantAnswers: 0,
		},
		{
			name:        "keyboard-interactive",
			opts:        serverOptions{User: "alice", Password: password, KeyboardInteractiveOnly: true},
			user:        "alice",
			password:    password,
			wantAnswers: 1,
		},
		{
			// The server repeats its prompt after a wrong answer; the
			// client must give up after one answer instead of retrying
			// the same password.
			name:        "keyboard-interactive wrong password",
			opts:        serverOptions{User: "alice", Password: password, KeyboardInteractiveOnly: true},
			user:        "alice",
			password:    "wrong-" + password,
			wantErr:     sshbridge.ErrAuth,
			wantAnswers: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newTestServer(t, tt.opts)
			target := srv.Target()
			target.User = tt.user
			target.Password = tt.password
			var logs syncbuf.Buffer
			cfg := sshbridge.Config{
				Term:    "xterm",
				Timeout: waitTimeout,
				Logger:  slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
			}

			r := recv(t, dialAsync(t, t.Context(), cfg, target), "Dial to return")
			if got := srv.KeyboardAnswers(); got != tt.wantAnswers {
				t.Errorf("keyboard-interactive answers: got %d, want %d", got, tt.wantAnswers)
			}
			if strings.Contains(logs.String(), tt.password) {
				t.Errorf("logs contain the password: %q", logs.String())
			}
			if tt.wantErr != nil {
				if !errors.Is(r.err, tt.wantErr) {
					t.Fatalf("Dial: got error %v, want %v", r.err, tt.wantErr)
				}
				if strings.Contains(r.err.Error(), tt.password) {
					t.Errorf("Dial error %q contains the password", r.err)
				}
				return
			}
			if r.err != nil {
				t.Fatalf("Dial: got error %v, want nil", r.err)
			}
			t.Cleanup(func() { r.sess.Close() })
			checkShell(t, r.sess, sshbridge.DefaultWindowSize)
		})
	}
}

func TestPTY(t *testing.T) {
	srv, target := passwordServer(t)
	cfg := sshbridge.Config{Term: "xterm-256color", Timeout: waitTimeout}
	sess := dialShell(t, cfg, target, sshbridge.WindowSize{Rows: 33, Cols: 111})
	out := readOutput(t, sess, sess)

	// The modes and the size in pixels (8 per cell) are what x/crypto's
	// Session.RequestPty sends.
	want := ptyEvent{Kind: "pty-req", Term: "xterm-256color", Rows: 33, Cols: 111,
		Width: 111 * 8, Height: 33 * 8, Modes: fmt.Sprint(map[byte]uint32(ssh.TerminalModes{
			ssh.ECHO: 1, ssh.TTY_OP_ISPEED: 38400, ssh.TTY_OP_OSPEED: 38400,
		}))}
	if got := srv.nextEvent(t); got != want {
		t.Fatalf("server got %+v, want %+v", got, want)
	}
	if _, err := sess.Write([]byte("size\r")); err != nil {
		t.Fatalf("Write: got error %v, want nil", err)
	}
	out.waitFor(t, "size\r\n33 111\r\n")

	if err := sess.Resize(sshbridge.WindowSize{Rows: 44, Cols: 132}); err != nil {
		t.Fatalf("Resize: got error %v, want nil", err)
	}
	want = ptyEvent{Kind: "window-change", Rows: 44, Cols: 132, Width: 132 * 8, Height: 44 * 8}
	if got := srv.nextEvent(t); got != want {
		t.Fatalf("server got %+v, want %+v", got, want)
	}
	if _, err := sess.Write([]byte("size\r")); err != nil {
		t.Fatalf("Write: got error %v, want nil", err)
	}
	wantOut := "size\r\n33 111\r\nsize\r\n44 132\r\n"
	if got := out.waitFor(t, "44 132\r\n"); got != wantOut {
		t.Errorf("output: got %q, want %q", got, wantOut)
	}
}

// TestExit checks that output written before the shell exits is all read
// before io.EOF, including output larger than the channel window.
func TestExit(t *testing.T) {
	_, target := passwordServer(t)
	for _, n := range []int{0, 1000, 3 << 20} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			sess := dialShell(t, sshbridge.Config{Timeout: waitTimeout}, target, sshbridge.DefaultWindowSize)
			out := readOutput(t, sess, sess)
			cmd := fmt.Sprintf("flood %d", n)
			if _, err := sess.Write([]byte(cmd + "\rexit\r")); err != nil {
				t.Fatalf("Write: got error %v, want nil", err)
			}
			got, err := out.waitEnd(t)
			if err != io.EOF {
				t.Errorf("Read: got error %v, want io.EOF", err)
			}
			want := cmd + "\r\n" + string(lightssh.FloodData(n)) + "exit\r\n"
			if got != want {
				t.Errorf("output: got %q, want %q", abbrev(got), abbrev(want))
			}
		})
	}
}

func TestClose(t *testing.T) {
	_, target := passwordServer(t)
	sess := dialShell(t, sshbridge.Config{Timeout: waitTimeout}, target, sshbridge.DefaultWindowSize)
	out := readOutput(t, sess, sess)
	errOut := readOutput(t, sess, sess.Stderr())
	if _, err := sess.Write([]byte("ready\r")); err != nil {
		t.Fatalf("Write: got error %v, want nil", err)
	}
	out.waitFor(t, "ready\r\n")

	// Both readers are now blocked in Read; Close must end them.
	sess.Close()
	if _, err := out.waitEnd(t); err == nil {
		t.Errorf("pending Read after Close: got nil error, want an error")
	}
	if _, err := errOut.waitEnd(t); err == nil {
		t.Errorf("pending Stderr read after Close: got nil error, want an error")
	}
	if err := sess.Close(); err != nil {
		t.Errorf("second Close: got error %v, want nil", err)
	}
	if n, err := sess.Write([]byte("late\r")); err == nil {
		t.Errorf("Write after Close: got (%d, nil), want an error", n)
	}
	if err := sess.Resize(sshbridge.WindowSize{Rows: 1, Cols: 1}); err == nil {
		t.Errorf("Resize after Close: got nil error, want an error")
	}
}

// TestCloseStalledNetwork checks that Close returns, and unblocks a pending
// Write, when the network has stopped carrying data.
func TestCloseStalledNetwork(t *testing.T) {
	_, target := passwordServer(t)
	dialer := &stallDialer{conns: make(chan *stallConn, 1)}
	cfg := sshbridge.Config{Timeout: waitTimeout, Dialer: dialer}
	sess := dialShell(t, cfg, target, sshbridge.DefaultWindowSize)
	conn := recv(t, dialer.conns, "the dialled connection")
	// Registered after dialShell, so it runs first: if Close hangs, this
	// releases it and the test fails instead of hanging.
	t.Cleanup(func() { conn.Close() })

	conn.stalled.Store(true)
	writeErr := make(chan error, 1)
	go func() {
		_, err := sess.Write([]byte("x"))
		writeErr <- err
	}()
	recv(t, conn.blocked, "Write to block on the stalled network")

	closed := make(chan error, 1)
	go func() { closed <- sess.Close() }()
	recv(t, closed, "Close to return")
	if err := recv(t, writeErr, "the pending Write to return"); err == nil {
		t.Errorf("pending Write after Close: got nil error, want an error")
	}
}

// TestServerRequests checks that the session answers what a server sends
// on its own, each wanting a reply: a global keepalive@openssh.com (OpenSSH
// disconnects a client that does not answer), a channel open and a request
// on the session channel. The session must decline them and go on.
func TestServerRequests(t *testing.T) {
	_, target := passwordServer(t)
	sess := dialShell(t, sshbridge.Config{Timeout: waitTimeout}, target, sshbridge.DefaultWindowSize)
	out := readOutput(t, sess, sess)
	if _, err := sess.Write([]byte("probe\rprobe\rsize\r")); err != nil {
		t.Fatalf("Write: got error %v, want nil", err)
	}
	want := "probe\r\n" + lightssh.ProbeWant + "\r\nprobe\r\n" + lightssh.ProbeWant + "\r\nsize\r\n24 80\r\n"
	if got := out.waitFor(t, "24 80\r\n"); got != want {
		t.Errorf("output: got %q, want %q", got, want)
	}
}

func TestStderr(t *testing.T) {
	_, target := passwordServer(t)
	sess := dialShell(t, sshbridge.Config{Timeout: waitTimeout}, target, sshbridge.DefaultWindowSize)
	out := readOutput(t, sess, sess)
	errOut := readOutput(t, sess, sess.Stderr())

	if _, err := sess.Write([]byte("stderr oops:on-stderr\rsize\r")); err != nil {
		t.Fatalf("Write: got error %v, want nil", err)
	}
	if got, want := errOut.waitFor(t, "oops:on-stderr"), "oops:on-stderr"; got != want {
		t.Errorf("stderr: got %q, want %q", got, want)
	}
	// The stderr text must not show up on stdout (only its echo).
	if got, want := out.waitFor(t, "24 80\r\n"), "stderr oops:on-stderr\r\nsize\r\n24 80\r\n"; got != want {
		t.Errorf("stdout: got %q, want %q", got, want)
	}
}

func TestDialErrors(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(t *testing.T) (sshbridge.Config, sshbridge.Target)
		wantErr error
		// alsoOK are other errors accepted when the environment cannot
		// produce wantErr; see the case.
		alsoOK []error
	}{
		{
			name: "refused",
			setup: func(t *testing.T) (sshbridge.Config, sshbridge.Target) {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatalf("listen: %v", err)
				}
				target := targetFor(ln.Addr(), "u")
				ln.Close()
				target.Password = "pw"
				return sshbridge.Config{Timeout: waitTimeout}, target
			},
			wantErr: sshbridge.ErrRefused,
		},
		{
			// The server accepts TCP but never starts the SSH handshake:
			// the timeout must cover the handshake, not only connect.
			name: "timeout",
			setup: func(t *testing.T) (sshbridge.Config, sshbridge.Target) {
				return sshbridge.Config{Timeout: 300 * time.Millisecond}, newSilentServer(t).Target()
			},
			wantErr: sshbridge.ErrTimeout,
		},
		{
			// .invalid never resolves (RFC 2606). A working resolver says
			// "no such host" at once; a resolver that cannot be reached
			// gives a DNS timeout, which Dial reports as ErrTimeout.
			name: "host not found",
			setup: func(t *testing.T) (sshbridge.Config, sshbridge.Target) {
				return sshbridge.Config{Timeout: 5 * time.Second},
					sshbridge.Target{Host: "no-such-host.invalid", Port: 22, User: "u", Password: "pw"}
			},
			wantErr: sshbridge.ErrHostNotFound,
			alsoOK:  []error{sshbridge.ErrTimeout},
		},
		{
			name: "session rejected",
			setup: func(t *testing.T) (sshbridge.Config, sshbridge.Target) {
				srv := newTestServer(t, serverOptions{User: "u", Password: "pw", RejectSessions: true})
				target := srv.Target()
				target.Password = "pw"
				return sshbridge.Config{Timeout: waitTimeout}, target
			},
			wantErr: sshbridge.ErrSession,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, target := tt.setup(t)
			r := recv(t, dialAsync(t, t.Context(), cfg, target), "Dial to return")
			if errors.Is(r.err, tt.wantErr) {
				return
			}
			for _, e := range tt.alsoOK {
				if errors.Is(r.err, e) {
					t.Logf("Dial: got %v; accepted instead of %v in this environment", r.err, tt.wantErr)
					return
				}
			}
			t.Errorf("Dial: got error %v, want %v", r.err, tt.wantErr)
		})
	}
}

// TestDialCancel cancels Dial while the SSH handshake hangs.
func TestDialCancel(t *testing.T) {
	tests := []struct {
		name   string
		cancel func(ctx context.Context) (context.Context, func())
	}{
		{"cancel", func(ctx context.Context) (context.Context, func()) {
			ctx, cancel := context.WithCancel(ctx)
			return ctx, cancel
		}},
		{"cancel with cause", func(ctx context.Context) (context.Context, func()) {
			ctx, cancel := context.WithCancelCause(ctx)
			return ctx, func() { cancel(errors.New("server shutting down")) }
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			silent := newSilentServer(t)
			ctx, cancel := tt.cancel(t.Context())
			// No Timeout: only the cancellation can end Dial.
			done := dialAsync(t, ctx, sshbridge.Config{}, silent.Target())
			recv(t, silent.accepted, "the TCP connection")
			cancel()
			r := recv(t, done, "Dial to return after cancel")
			if !errors.Is(r.err, context.Canceled) {
				t.Errorf("Dial: got error %v, want %v", r.err, context.Canceled)
			}
			for _, e := range []error{sshbridge.ErrUnreachable, sshbridge.ErrTimeout, sshbridge.ErrHandshake} {
				if errors.Is(r.err, e) {
					t.Errorf("Dial: got error %v, which is %v; want only %v", r.err, e, context.Canceled)
				}
			}
		})
	}
}
