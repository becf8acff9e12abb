package sshbridge_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/alfresco-ssh/alfresco-ssh/internal/sshdtest"
	"github.com/alfresco-ssh/alfresco-ssh/internal/syncbuf"
	"github.com/alfresco-ssh/alfresco-ssh/sshbridge"
)

// newHostSigner returns a host key of kind "ed25519" or "ecdsa" (P-256),
// fresh for each call, or "rsa", the package's shared RSA test key: RSA
// generation is slow.
func newHostSigner(t *testing.T, kind string) ssh.Signer {
	t.Helper()
	var k crypto.Signer
	switch kind {
	case "ed25519":
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatalf("generate key: %v", err)
		}
		k = priv
	case "ecdsa":
		priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatalf("generate key: %v", err)
		}
		k = priv
	case "rsa":
		k = keys(t)["rsa"]
	default:
		t.Fatalf("unknown key kind %q", kind)
	}
	signer, err := ssh.NewSignerFromSigner(k)
	if err != nil {
		t.Fatalf("signer: %v", err)
	}
	return signer
}

// hostCert returns a signer that presents a host certificate for host's
// key, signed by ca.
func hostCert(t *testing.T, host, ca ssh.Signer, principals []string, validAfter, validBefore time.Time) ssh.Signer {
	t.Helper()
	cert := &ssh.Certificate{
		Key:             host.PublicKey(),
		Serial:          1,
		CertType:        ssh.HostCert,
		KeyId:           "test host",
		ValidPrincipals: principals,
		ValidAfter:      uint64(validAfter.Unix()),
		ValidBefore:     uint64(validBefore.Unix()),
	}
	if err := cert.SignCert(rand.Reader, ca); err != nil {
		t.Fatalf("sign certificate: %v", err)
	}
	signer, err := ssh.NewCertSigner(cert, host)
	if err != nil {
		t.Fatalf("certificate signer: %v", err)
	}
	return signer
}

// hostServer starts an in-process server offering the host keys, with
// user "u" and password "pw", and returns it with a Target for it.
func hostServer(t *testing.T, hostKeys ...ssh.Signer) (*testServer, sshbridge.Target) {
	t.Helper()
	srv := newTestServer(t, serverOptions{User: "u", Password: "pw", HostKeys: hostKeys})
	target := srv.Target()
	target.Password = "pw"
	return srv, target
}

// khLine is the known_hosts line for addr ("host:port") and key.
func khLine(addr string, key ssh.PublicKey) string {
	return knownhosts.Line([]string{addr}, key)
}

// khHashed is the known_hosts line for addr and key with the host name
// hashed, as ssh-keygen -H writes it.
func khHashed(addr string, key ssh.PublicKey) string {
	return knownhosts.HashHostname(knownhosts.Normalize(addr)) + " " + authorizedLine(key)
}

// writeFile replaces the file at path with the lines.
func writeFile(t *testing.T, path string, lines ...string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(fileContent(lines)), 0o600); err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
}

// fileContent is what writeFile writes for lines.
func fileContent(lines []string) string {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l + "\n")
	}
	return b.String()
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return string(b)
}

// newHostKeys makes a HostKeys whose log goes to the returned buffer.
func newHostKeys(t *testing.T, policy sshbridge.HostKeyPolicy, file string) (*sshbridge.HostKeys, *syncbuf.Buffer) {
	t.Helper()
	logs := new(syncbuf.Buffer)
	h, err := sshbridge.NewHostKeys(policy, file, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatalf("NewHostKeys(%s, %q): got error %v, want nil", policy, file, err)
	}
	return h, logs
}

// tryDial dials and closes the session if one opened.
func tryDial(t *testing.T, cfg sshbridge.Config, target sshbridge.Target) error {
	t.Helper()
	if cfg.Timeout == 0 {
		cfg.Timeout = waitTimeout
	}
	r := recv(t, dialAsync(t, t.Context(), cfg, target), "Dial to return")
	if r.sess != nil {
		r.sess.Close()
	}
	return r.err
}

// checkVerdict checks Dial's error: nil for want "", else a *HostKeyError
// for want that names host and, when presented is not nil, that key.
func checkVerdict(t *testing.T, err error, want sshbridge.HostKeyReason, host string, presented ssh.PublicKey) {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Fatalf("Dial: got error %v, want nil", err)
		}
		return
	}
	var hk *sshbridge.HostKeyError
	if !errors.As(err, &hk) {
		t.Fatalf("Dial: got error %v, want a *HostKeyError (%s)", err, want)
	}
	if !errors.Is(err, sshbridge.ErrHostKey) {
		t.Errorf("Dial: got error %v, want it to match ErrHostKey", err)
	}
	if hk.Reason != want {
		t.Errorf("Reason: got %q, want %q (%v)", hk.Reason, want, err)
	}
	if hk.Host != host {
		t.Errorf("Host: got %q, want %q", hk.Host, host)
	}
	if presented != nil {
		plain := presented
		if cert, ok := presented.(*ssh.Certificate); ok {
			plain = cert.Key
		}
		if got, want := hk.Fingerprint, ssh.FingerprintSHA256(plain); got != want {
			t.Errorf("Fingerprint: got %q, want %q", got, want)
		}
		if got, want := hk.KeyType, presented.Type(); got != want {
			t.Errorf("KeyType: got %q, want %q", got, want)
		}
	}
	msg := hk.UserMessage()
	for _, want := range []string{host, hk.KeyType + " " + hk.Fingerprint} {
		if !strings.Contains(msg, want) || !strings.Contains(err.Error(), want) {
			t.Errorf("UserMessage %q and Error %q: want both to contain %q", msg, err, want)
		}
	}
}

// redirectDialer dials to instead of the address asked for ("" dials that
// address), and counts its dials.
type redirectDialer struct {
	to    string
	dials atomic.Int32
}

func (d *redirectDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	d.dials.Add(1)
	if d.to != "" {
		addr = d.to
	}
	return (&net.Dialer{}).DialContext(ctx, network, addr)
}

func TestParseHostKeyPolicy(t *testing.T) {
	tests := []struct {
		in      string
		want    sshbridge.HostKeyPolicy
		wantErr bool
	}{
		{"accept", sshbridge.PolicyAccept, false},
		{"known-hosts", sshbridge.PolicyKnownHosts, false},
		{"tofu", sshbridge.PolicyTOFU, false},
		{"", "", true},
		{"known_hosts", "", true},
		{"TOFU", "", true},
		{"strict", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := sshbridge.ParseHostKeyPolicy(tt.in)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("ParseHostKeyPolicy(%q): got (%q, %v), want %q and error %v", tt.in, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestNewHostKeys(t *testing.T) {
	dir := t.TempDir()
	valid := filepath.Join(dir, "known_hosts")
	writeFile(t, valid, khLine("10.0.0.1:22", newHostSigner(t, "ed25519").PublicKey()))
	empty := filepath.Join(dir, "empty")
	writeFile(t, empty)
	invalid := filepath.Join(dir, "invalid")
	writeFile(t, invalid, "not a known_hosts line", "neither is this")
	missing := filepath.Join(dir, "missing")

	tests := []struct {
		name    string
		policy  sshbridge.HostKeyPolicy
		file    string
		wantErr bool
		wantLog string
	}{
		{name: "accept", policy: sshbridge.PolicyAccept, wantLog: "level=WARN msg=\"host keys are not verified"},
		{name: "accept with a file", policy: sshbridge.PolicyAccept, file: valid, wantErr: true},
		{name: "known-hosts", policy: sshbridge.PolicyKnownHosts, file: valid, wantLog: "level=INFO msg=\"host keys are verified\" policy=known-hosts"},
		{name: "known-hosts empty file", policy: sshbridge.PolicyKnownHosts, file: empty},
		{name: "known-hosts without a file", policy: sshbridge.PolicyKnownHosts, wantErr: true},
		{name: "known-hosts missing file", policy: sshbridge.PolicyKnownHosts, file: missing, wantErr: true},
		{name: "known-hosts invalid file", policy: sshbridge.PolicyKnownHosts, file: invalid, wantErr: true},
		{name: "tofu", policy: sshbridge.PolicyTOFU, file: valid, wantLog: "policy=tofu"},
		{name: "tofu without a file", policy: sshbridge.PolicyTOFU, wantErr: true},
		{name: "tofu invalid file", policy: sshbridge.PolicyTOFU, file: invalid, wantErr: true},
		{name: "tofu in a missing directory", policy: sshbridge.PolicyTOFU, file: filepath.Join(dir, "no", "such"), wantErr: true},
		{name: "unknown policy", policy: "strict", file: valid, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs syncbuf.Buffer
			h, err := sshbridge.NewHostKeys(tt.policy, tt.file, slog.New(slog.NewTextHandler(&logs, nil)))
			if tt.wantErr {
				if err == nil {
					t.Fatalf("NewHostKeys: got (%v, nil), want an error", h)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewHostKeys: got error %v, want nil", err)
			}
			if got := h.Policy(); got != tt.policy {
				t.Errorf("Policy(): got %q, want %q", got, tt.policy)
			}
			if !strings.Contains(logs.String(), tt.wantLog) {
				t.Errorf("log: got %q, want it to contain %q", logs.String(), tt.wantLog)
			}
		})
	}

	t.Run("tofu creates the file", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "known_hosts")
		newHostKeys(t, sshbridge.PolicyTOFU, file)
		fi, err := os.Stat(file)
		if err != nil {
			t.Fatalf("stat: got error %v, want the file created", err)
		}
		if got := fi.Mode().Perm(); got != 0o600 {
			t.Errorf("mode: got %v, want 0600", got)
		}
	})
	if got := (*sshbridge.HostKeys)(nil).Policy(); got != sshbridge.PolicyAccept {
		t.Errorf("nil Policy(): got %q, want accept", got)
	}
}

func TestHostKeyErrorMessage(t *testing.T) {
	tests := []struct {
		reason sshbridge.HostKeyReason
		want   string
	}{
		{sshbridge.HostKeyUnknown, "is not known"},
		{sshbridge.HostKeyChanged, "has changed"},
		{sshbridge.HostKeyRevoked, "has been revoked"},
		{sshbridge.HostKeyPinMismatch, "does not match the pinned key"},
		{sshbridge.HostKeyUnverifiable, "could not be verified"},
	}
	for _, tt := range tests {
		t.Run(string(tt.reason), func(t *testing.T) {
			err := error(&sshbridge.HostKeyError{
				Host: "10.0.0.5:22", KeyType: "ssh-ed25519", Fingerprint: "SHA256:abc", Reason: tt.reason,
			})
			wrapped := fmt.Errorf("sshbridge: connect 10.0.0.5:22: %w", err)
			if !errors.Is(wrapped, sshbridge.ErrHostKey) {
				t.Errorf("errors.Is(%v, ErrHostKey): got false, want true", wrapped)
			}
			var hk *sshbridge.HostKeyError
			if !errors.As(wrapped, &hk) {
				t.Fatalf("errors.As(%v, *HostKeyError): got false, want true", wrapped)
			}
			msg := hk.UserMessage()
			wantPrefix := "the host key of 10.0.0.5:22 (ssh-ed25519 SHA256:abc) " + tt.want
			if !strings.HasPrefix(msg, wantPrefix) {
				t.Errorf("UserMessage: got %q, want it to start with %q", msg, wantPrefix)
			}
			if got, want := err.Error(), "sshbridge: "+msg; got != want {
				t.Errorf("Error: got %q, want %q", got, want)
			}
		})
	}
}

// TestAcceptPolicy checks that a nil HostKeys and PolicyAccept accept any
// key and log its fingerprint at info.
func TestAcceptPolicy(t *testing.T) {
	srv, target := hostServer(t)
	for _, policy := range []sshbridge.HostKeyPolicy{"", sshbridge.PolicyAccept} {
		t.Run(fmt.Sprintf("%q", policy), func(t *testing.T) {
			var logs syncbuf.Buffer
			log := slog.New(slog.NewTextHandler(&logs, nil))
			cfg := sshbridge.Config{Timeout: waitTimeout, Logger: log}
			if policy != "" {
				h, err := sshbridge.NewHostKeys(policy, "", log)
				if err != nil {
					t.Fatalf("NewHostKeys: %v", err)
				}
				cfg.HostKeys = h
			}
			dialShell(t, cfg, target, sshbridge.DefaultWindowSize)

			fp := ssh.FingerprintSHA256(srv.HostKey())
			got := logs.String()
			for _, want := range []string{
				"level=INFO msg=\"accepted host key without verification\"",
				"host=" + target.Addr(), "type=" + srv.HostKey().Type(), "fingerprint=" + fp,
			} {
				if !strings.Contains(got, want) {
					t.Errorf("log: got %q, want it to contain %q", got, want)
				}
			}
		})
	}
}

func TestKnownHosts(t *testing.T) {
	key := newHostSigner(t, "ed25519")
	other := newHostSigner(t, "ed25519").PublicKey()
	_, target := hostServer(t, key)
	addr := target.Addr()
	port := strconv.Itoa(target.Port)
	pub := key.PublicKey()

	tests := []struct {
		name  string
		lines []string
		want  sshbridge.HostKeyReason
	}{
		{"exact", []string{khLine(addr, pub)}, ""},
		{"among others", []string{khLine("10.0.0.1:22", other), khLine(addr, pub), khLine("10.0.0.2:22", pub)}, ""},
		{"also another key", []string{khLine(addr, other), khLine(addr, pub)}, ""},
		{"hashed", []string{khHashed(addr, pub)}, ""},
		{"pattern ?", []string{"[127.0.0.?]:" + port + " " + authorizedLine(pub)}, ""},
		{"pattern *", []string{"[127.*]:" + port + " " + authorizedLine(pub)}, ""},
		{"pattern list", []string{"h.example,[127.0.0.1]:" + port + " " + authorizedLine(pub)}, ""},
		{"comments and bad lines", []string{"# comment", "", "not a line", khLine(addr, pub) + " comment"}, ""},
		{"negated", []string{"[127.0.0.*]:" + port + ",![127.0.0.1]:" + port + " " + authorizedLine(pub)}, sshbridge.HostKeyUnknown},
		{"other port", []string{khLine("127.0.0.1:1", pub)}, sshbridge.HostKeyUnknown},
		{"default port", []string{"127.0.0.1 " + authorizedLine(pub)}, sshbridge.HostKeyUnknown},
		{"key of another host", []string{khLine("10.0.0.1:22", pub)}, sshbridge.HostKeyUnknown},
		{"empty", nil, sshbridge.HostKeyUnknown},
		{"changed", []string{khLine(addr, other)}, sshbridge.HostKeyChanged},
		{"changed hashed", []string{khHashed(addr, other)}, sshbridge.HostKeyChanged},
		{"changed pattern", []string{"[127.0.0.*]:" + port + " " + authorizedLine(other)}, sshbridge.HostKeyChanged},
		{"only an authority", []string{"@cert-authority [127.0.0.1]:" + port + " " + authorizedLine(other)}, sshbridge.HostKeyUnknown},
		{"revoked", []string{khLine(addr, pub), "@revoked * " + authorizedLine(pub)}, sshbridge.HostKeyRevoked},
		{"another key revoked", []string{khLine(addr, pub), "@revoked * " + authorizedLine(other)}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "known_hosts")
			writeFile(t, file, tt.lines...)
			h, _ := newHostKeys(t, sshbridge.PolicyKnownHosts, file)
			err := tryDial(t, sshbridge.Config{HostKeys: h}, target)
			checkVerdict(t, err, tt.want, addr, pub)
		})
	}
}

// TestKnownHostsCertAuthority checks host certificates against
// @cert-authority entries.
func TestKnownHostsCertAuthority(t *testing.T) {
	host := newHostSigner(t, "ed25519")
	ca := newHostSigner(t, "ed25519")
	otherCA := newHostSigner(t, "ecdsa")
	now := time.Now()
	valid := hostCert(t, host, ca, []string{"127.0.0.1"}, now.Add(-time.Hour), now.Add(time.Hour))

	tests := []struct {
		name  string
		cert  ssh.Signer
		lines func(addr, port string) []string
		want  sshbridge.HostKeyReason
	}{
		{"authority", valid, func(addr, port string) []string {
			return []string{"@cert-authority [127.0.0.1]:" + port + " " + authorizedLine(ca.PublicKey())}
		}, ""},
		{"authority by pattern", valid, func(addr, port string) []string {
			return []string{"@cert-authority [127.0.0.*]:" + port + " " + authorizedLine(ca.PublicKey())}
		}, ""},
		{"authority hashed", valid, func(addr, port string) []string {
			return []string{"@cert-authority " + khHashed(addr, ca.PublicKey())}
		}, ""},
		{"authority of other hosts", valid, func(addr, port string) []string {
			return []string{"@cert-authority *.example.com " + authorizedLine(ca.PublicKey())}
		}, sshbridge.HostKeyUnknown},
		{"other authority", hostCert(t, host, otherCA, []string{"127.0.0.1"}, now.Add(-time.Hour), now.Add(time.Hour)),
			func(addr, port string) []string {
				return []string{"@cert-authority [127.0.0.1]:" + port + " " + authorizedLine(ca.PublicKey())}
			}, sshbridge.HostKeyUnknown},
		{"wrong principal", hostCert(t, host, ca, []string{"h.example"}, now.Add(-time.Hour), now.Add(time.Hour)),
			func(addr, port string) []string {
				return []string{"@cert-authority [127.0.0.1]:" + port + " " + authorizedLine(ca.PublicKey())}
			}, sshbridge.HostKeyUnknown},
		{"expired", hostCert(t, host, ca, []string{"127.0.0.1"}, now.Add(-2*time.Hour), now.Add(-time.Hour)),
			func(addr, port string) []string {
				return []string{"@cert-authority [127.0.0.1]:" + port + " " + authorizedLine(ca.PublicKey())}
			}, sshbridge.HostKeyUnknown},
		{"authority revoked", valid, func(addr, port string) []string {
			return []string{
				"@cert-authority [127.0.0.1]:" + port + " " + authorizedLine(ca.PublicKey()),
				"@revoked * " + authorizedLine(ca.PublicKey()),
			}
		}, sshbridge.HostKeyRevoked},
		{"host key revoked", valid, func(addr, port string) []string {
			return []string{
				"@cert-authority [127.0.0.1]:" + port + " " + authorizedLine(ca.PublicKey()),
				"@revoked * " + authorizedLine(host.PublicKey()),
			}
		}, sshbridge.HostKeyRevoked},
		{
			// As OpenSSH does, a certificate no listed authority vouches
			// for is checked as the plain key it certifies.
			"unknown authority, known key", hostCert(t, host, otherCA, []string{"127.0.0.1"}, now.Add(-time.Hour), now.Add(time.Hour)),
			func(addr, port string) []string { return []string{khLine(addr, host.PublicKey())} }, "",
		},
		{"expired, known key", hostCert(t, host, ca, []string{"127.0.0.1"}, now.Add(-2*time.Hour), now.Add(-time.Hour)),
			func(addr, port string) []string {
				return []string{
					"@cert-authority [127.0.0.1]:" + port + " " + authorizedLine(ca.PublicKey()),
					khLine(addr, host.PublicKey()),
				}
			}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, target := hostServer(t, tt.cert)
			file := filepath.Join(t.TempDir(), "known_hosts")
			writeFile(t, file, tt.lines(target.Addr(), strconv.Itoa(target.Port))...)
			h, _ := newHostKeys(t, sshbridge.PolicyKnownHosts, file)
			err := tryDial(t, sshbridge.Config{HostKeys: h}, target)
			checkVerdict(t, err, tt.want, target.Addr(), tt.cert.PublicKey())
		})
	}

	// A server offering its plain keys and a certificate presents the
	// certificate when an authority is listed for the host.
	t.Run("certificate preferred", func(t *testing.T) {
		rsaKey := newHostSigner(t, "rsa")
		_, target := hostServer(t, rsaKey, newHostSigner(t, "ecdsa"), valid)
		file := filepath.Join(t.TempDir(), "known_hosts")
		writeFile(t, file, "@cert-authority [*]:"+strconv.Itoa(target.Port)+" "+authorizedLine(ca.PublicKey()),
			khLine(target.Addr(), rsaKey.PublicKey()))
		h, logs := newHostKeys(t, sshbridge.PolicyKnownHosts, file)
		if err := tryDial(t, sshbridge.Config{HostKeys: h, Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}, target); err != nil {
			t.Fatalf("Dial: got error %v, want nil", err)
		}
		if want := "type=" + valid.PublicKey().Type(); !strings.Contains(logs.String(), want) {
			t.Errorf("log: got %q, want it to contain %q", logs.String(), want)
		}
	})
}

// TestKnownHostsKeyTypes checks that a host known by one of its several
// keys is accepted: the known key's algorithms go first in the negotiation.
func TestKnownHostsKeyTypes(t *testing.T) {
	signers := map[string]ssh.Signer{
		"ed25519": newHostSigner(t, "ed25519"),
		"ecdsa":   newHostSigner(t, "ecdsa"),
		"rsa":     newHostSigner(t, "rsa"),
	}
	_, target := hostServer(t, signers["ed25519"], signers["ecdsa"], signers["rsa"])
	addr := target.Addr()
	for _, kind := range []string{"ed25519", "ecdsa", "rsa"} {
		for _, policy := range []sshbridge.HostKeyPolicy{sshbridge.PolicyKnownHosts, sshbridge.PolicyTOFU} {
			t.Run(kind+"/"+string(policy), func(t *testing.T) {
				file := filepath.Join(t.TempDir(), "known_hosts")
				writeFile(t, file, khLine(addr, signers[kind].PublicKey()))
				h, _ := newHostKeys(t, policy, file)
				checkVerdict(t, tryDial(t, sshbridge.Config{HostKeys: h}, target), "", addr, nil)
				if got, want := readFile(t, file), khLine(addr, signers[kind].PublicKey())+"\n"; got != want {
					t.Errorf("file: got %q, want it unchanged, %q", got, want)
				}
			})
		}
	}
	t.Run("changed", func(t *testing.T) {
		// The file knows another ed25519 key: the server presents its own
		// ed25519 key, and it is refused with that key's fingerprint.
		file := filepath.Join(t.TempDir(), "known_hosts")
		writeFile(t, file, khLine(addr, newHostSigner(t, "ed25519").PublicKey()))
		h, _ := newHostKeys(t, sshbridge.PolicyKnownHosts, file)
		err := tryDial(t, sshbridge.Config{HostKeys: h}, target)
		checkVerdict(t, err, sshbridge.HostKeyChanged, addr, signers["ed25519"].PublicKey())
	})
}

// TestKnownHostsReload edits the file between connections made with one
// HostKeys: each edit takes effect at the next connection.
func TestKnownHostsReload(t *testing.T) {
	key := newHostSigner(t, "ed25519")
	other := newHostSigner(t, "ed25519").PublicKey()
	_, target := hostServer(t, key)
	addr := target.Addr()
	file := filepath.Join(t.TempDir(), "known_hosts")
	writeFile(t, file, khLine(addr, other))
	h, logs := newHostKeys(t, sshbridge.PolicyKnownHosts, file)
	cfg := sshbridge.Config{HostKeys: h}

	steps := []struct {
		name    string
		edit    func()
		want    sshbridge.HostKeyReason
		wantLog string
	}{
		{"changed", func() {}, sshbridge.HostKeyChanged, ""},
		{"key added", func() { writeFile(t, file, khLine(addr, other), khLine(addr, key.PublicKey())) }, "", ""},
		// The same size as before: only the time stamp can tell.
		{"key removed", func() { writeFile(t, file, khLine(addr, other), khLine(addr, other)) }, sshbridge.HostKeyChanged, ""},
		{"key back", func() { writeFile(t, file, khLine(addr, key.PublicKey())) }, "", ""},
		{"revoked", func() {
			writeFile(t, file, khLine(addr, key.PublicKey()), "@revoked * "+authorizedLine(key.PublicKey()))
		}, sshbridge.HostKeyRevoked, ""},
		{"file removed", func() {
			if err := os.Remove(file); err != nil {
				t.Fatal(err)
			}
		}, sshbridge.HostKeyUnknown, "known hosts file is missing"},
		{"file unusable", func() { writeFile(t, file, "not a known_hosts line") }, sshbridge.HostKeyUnverifiable, "known hosts file unusable"},
		{"file fixed", func() { writeFile(t, file, "not a line", khLine(addr, key.PublicKey())) }, "", "skipping a line that does not parse"},
		{"file replaced", func() {
			tmp := file + ".new"
			writeFile(t, tmp, khLine(addr, other))
			if err := os.Rename(tmp, file); err != nil {
				t.Fatal(err)
			}
		}, sshbridge.HostKeyChanged, ""},
	}
	for _, step := range steps {
		step.edit()
		err := tryDial(t, cfg, target)
		t.Run(step.name, func(t *testing.T) {
			checkVerdict(t, err, step.want, addr, key.PublicKey())
			if !strings.Contains(logs.String(), step.wantLog) {
				t.Errorf("log: got %q, want it to contain %q", logs.String(), step.wantLog)
			}
		})
	}
}

// TestKnownHostsReloadSameStamp rewrites the file in place with the same
// size and modification time, as two quick edits within one tick of a
// coarse file system clock would: the edit must still be seen.
func TestKnownHostsReloadSameStamp(t *testing.T) {
	key := newHostSigner(t, "ed25519")
	other := newHostSigner(t, "ed25519").PublicKey()
	_, target := hostServer(t, key)
	addr := target.Addr()
	file := filepath.Join(t.TempDir(), "known_hosts")
	stamp := time.Now()
	write := func(k ssh.PublicKey) {
		t.Helper()
		writeFile(t, file, khLine(addr, k))
		if err := os.Chtimes(file, stamp, stamp); err != nil {
			t.Fatal(err)
		}
	}
	write(other)
	h, _ := newHostKeys(t, sshbridge.PolicyKnownHosts, file)
	cfg := sshbridge.Config{HostKeys: h}
	checkVerdict(t, tryDial(t, cfg, target), sshbridge.HostKeyChanged, addr, key.PublicKey())
	write(key.PublicKey())
	checkVerdict(t, tryDial(t, cfg, target), "", addr, nil)
	write(other)
	checkVerdict(t, tryDial(t, cfg, target), sshbridge.HostKeyChanged, addr, key.PublicKey())
}

func TestTOFU(t *testing.T) {
	key := newHostSigner(t, "ed25519")
	srv, target := hostServer(t, key)
	addr := target.Addr()
	want := khLine(addr, key.PublicKey()) + "\n"

	t.Run("learns once", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "known_hosts")
		h, logs := newHostKeys(t, sshbridge.PolicyTOFU, file)
		cfg := sshbridge.Config{HostKeys: h}
		checkVerdict(t, tryDial(t, cfg, target), "", addr, nil)
		if got := readFile(t, file); got != want {
			t.Fatalf("file after the first connection: got %q, want %q", got, want)
		}
		if want := "host key trusted on first use and recorded"; !strings.Contains(logs.String(), want) {
			t.Errorf("log: got %q, want it to contain %q", logs.String(), want)
		}
		checkVerdict(t, tryDial(t, cfg, target), "", addr, nil)
		if got := readFile(t, file); got != want {
			t.Errorf("file after the second connection: got %q, want %q", got, want)
		}

		// Another server answers at the same address: its key is refused
		// and not recorded.
		changed, _ := hostServer(t, newHostSigner(t, "ed25519"))
		cfg.Dialer = &redirectDialer{to: changed.Addr().String()}
		checkVerdict(t, tryDial(t, cfg, target), sshbridge.HostKeyChanged, addr, changed.HostKey())
		if got := readFile(t, file); got != want {
			t.Errorf("file after a changed key: got %q, want %q", got, want)
		}
	})

	t.Run("appends after a line without newline", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "known_hosts")
		other := khLine("10.0.0.1:22", newHostSigner(t, "ed25519").PublicKey())
		if err := os.WriteFile(file, []byte(other), 0o644); err != nil {
			t.Fatal(err)
		}
		h, _ := newHostKeys(t, sshbridge.PolicyTOFU, file)
		checkVerdict(t, tryDial(t, sshbridge.Config{HostKeys: h}, target), "", addr, nil)
		if got := readFile(t, file); got != other+"\n"+want {
			t.Errorf("file: got %q, want %q", got, other+"\n"+want)
		}
	})

	t.Run("recreates a removed file", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "known_hosts")
		h, _ := newHostKeys(t, sshbridge.PolicyTOFU, file)
		if err := os.Remove(file); err != nil {
			t.Fatal(err)
		}
		checkVerdict(t, tryDial(t, sshbridge.Config{HostKeys: h}, target), "", addr, nil)
		if got := readFile(t, file); got != want {
			t.Errorf("file: got %q, want %q", got, want)
		}
		fi, err := os.Stat(file)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != 0o600 {
			t.Errorf("mode: got %v, want 0600", got)
		}
	})

	t.Run("revoked key not learned", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "known_hosts")
		revoked := "@revoked * " + authorizedLine(srv.HostKey()) + "\n"
		if err := os.WriteFile(file, []byte(revoked), 0o600); err != nil {
			t.Fatal(err)
		}
		h, _ := newHostKeys(t, sshbridge.PolicyTOFU, file)
		checkVerdict(t, tryDial(t, sshbridge.Config{HostKeys: h}, target), sshbridge.HostKeyRevoked, addr, srv.HostKey())
		if got := readFile(t, file); got != revoked {
			t.Errorf("file: got %q, want it unchanged, %q", got, revoked)
		}
	})

	t.Run("unreadable file", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "known_hosts")
		h, logs := newHostKeys(t, sshbridge.PolicyTOFU, file)
		// A directory where the file was cannot be read.
		if err := os.Remove(file); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(file, 0o700); err != nil {
			t.Fatal(err)
		}
		checkVerdict(t, tryDial(t, sshbridge.Config{HostKeys: h}, target), sshbridge.HostKeyUnverifiable, addr, key.PublicKey())
		if want := "level=ERROR msg=\"known hosts file unusable"; !strings.Contains(logs.String(), want) {
			t.Errorf("log: got %q, want it to contain %q", logs.String(), want)
		}
	})

	t.Run("unwritable file", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "dir")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(dir, "known_hosts")
		h, logs := newHostKeys(t, sshbridge.PolicyTOFU, file)
		// Without its directory the file can be neither read nor created.
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		checkVerdict(t, tryDial(t, sshbridge.Config{HostKeys: h}, target), sshbridge.HostKeyUnverifiable, addr, key.PublicKey())
		if want := "level=ERROR msg=\"known hosts file: cannot record a new host key\""; !strings.Contains(logs.String(), want) {
			t.Errorf("log: got %q, want it to contain %q", logs.String(), want)
		}
	})
}

// TestTOFUConcurrent makes several first connections to one new host at
// once: the key is recorded once.
func TestTOFUConcurrent(t *testing.T) {
	key := newHostSigner(t, "ed25519")
	_, target := hostServer(t, key)
	file := filepath.Join(t.TempDir(), "known_hosts")
	h, _ := newHostKeys(t, sshbridge.PolicyTOFU, file)
	cfg := sshbridge.Config{HostKeys: h, Timeout: waitTimeout}

	const n = 8
	results := make([]<-chan dialResult, n)
	for i := range results {
		results[i] = dialAsync(t, t.Context(), cfg, target)
	}
	for _, ch := range results {
		r := recv(t, ch, "Dial to return")
		if r.sess != nil {
			r.sess.Close()
		}
		if r.err != nil {
			t.Errorf("Dial: got error %v, want nil", r.err)
		}
	}
	if got, want := readFile(t, file), khLine(target.Addr(), key.PublicKey())+"\n"; got != want {
		t.Errorf("file: got %q, want one line, %q", got, want)
	}
}

// TestHostKeyPin checks that a pin decides under every policy.
func TestHostKeyPin(t *testing.T) {
	key := newHostSigner(t, "ed25519")
	other := newHostSigner(t, "ed25519").PublicKey()
	_, target := hostServer(t, key)
	addr := target.Addr()
	pub := key.PublicKey()

	policies := []struct {
		name   string
		policy sshbridge.HostKeyPolicy // "" for a nil HostKeys
		lines  []string
	}{
		{"nil", "", nil},
		{"accept", sshbridge.PolicyAccept, nil},
		{"known-hosts, known", sshbridge.PolicyKnownHosts, []string{khLine(addr, pub)}},
		{"known-hosts, unknown", sshbridge.PolicyKnownHosts, []string{}},
		{"known-hosts, changed", sshbridge.PolicyKnownHosts, []string{khLine(addr, other)}},
		{"tofu, new", sshbridge.PolicyTOFU, []string{}},
		{"tofu, changed", sshbridge.PolicyTOFU, []string{khLine(addr, other)}},
	}
	pins := []struct {
		name string
		pin  string
		want sshbridge.HostKeyReason
	}{
		{"fingerprint", ssh.FingerprintSHA256(pub), ""},
		{"key", authorizedLine(pub) + " host@example", ""},
		{"other fingerprint", ssh.FingerprintSHA256(other), sshbridge.HostKeyPinMismatch},
		{"other key", authorizedLine(other), sshbridge.HostKeyPinMismatch},
	}
	for _, p := range policies {
		for _, pin := range pins {
			t.Run(p.name+"/"+pin.name, func(t *testing.T) {
				cfg := sshbridge.Config{}
				var file string
				if p.policy != "" {
					if p.lines != nil {
						file = filepath.Join(t.TempDir(), "known_hosts")
						writeFile(t, file, p.lines...)
					}
					cfg.HostKeys, _ = newHostKeys(t, p.policy, file)
				}
				pinned := target
				pinned.HostKey = pin.pin
				checkVerdict(t, tryDial(t, cfg, pinned), pin.want, addr, pub)
				if file != "" {
					if got, want := readFile(t, file), fileContent(p.lines); got != want {
						t.Errorf("file: got %q, want it unchanged, %q", got, want)
					}
				}
			})
		}
	}

	t.Run("revoked beats the pin", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "known_hosts")
		writeFile(t, file, khLine(addr, pub), "@revoked * "+authorizedLine(pub))
		h, _ := newHostKeys(t, sshbridge.PolicyKnownHosts, file)
		pinned := target
		pinned.HostKey = ssh.FingerprintSHA256(pub)
		checkVerdict(t, tryDial(t, sshbridge.Config{HostKeys: h}, pinned), sshbridge.HostKeyRevoked, addr, pub)
	})

	t.Run("invalid pin", func(t *testing.T) {
		dialer := &redirectDialer{}
		pinned := target
		pinned.HostKey = "SHA256:nope"
		err := tryDial(t, sshbridge.Config{Dialer: dialer}, pinned)
		if !errors.Is(err, sshbridge.ErrBadPin) {
			t.Errorf("Dial: got error %v, want ErrBadPin", err)
		}
		if got := dialer.dials.Load(); got != 0 {
			t.Errorf("dials: got %d, want 0", got)
		}
	})
}

// TestHostKeyPinKeyTypes pins each of a server's several keys. A key pin
// puts its algorithms first; a fingerprint pin, whose key type is unknown,
// tries the server's keys one type at a time.
func TestHostKeyPinKeyTypes(t *testing.T) {
	signers := []ssh.Signer{newHostSigner(t, "ed25519"), newHostSigner(t, "ecdsa"), newHostSigner(t, "rsa")}
	_, target := hostServer(t, signers...)
	addr := target.Addr()
	var fingerprints []string
	for _, s := range signers {
		fingerprints = append(fingerprints, ssh.FingerprintSHA256(s.PublicKey()))
	}
	foreign := newHostSigner(t, "ed25519").PublicKey()

	type pinCase struct {
		name     string
		pin      string
		want     sshbridge.HostKeyReason
		maxDials int32
	}
	var tests []pinCase
	for _, s := range signers {
		tests = append(tests,
			pinCase{"key " + s.PublicKey().Type(), authorizedLine(s.PublicKey()), "", 1},
			pinCase{"fingerprint " + s.PublicKey().Type(), ssh.FingerprintSHA256(s.PublicKey()), "", int32(len(signers))})
	}
	tests = append(tests,
		pinCase{"other key", authorizedLine(foreign), sshbridge.HostKeyPinMismatch, 1},
		pinCase{"other fingerprint", ssh.FingerprintSHA256(foreign), sshbridge.HostKeyPinMismatch, int32(len(signers)) + 1})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dialer := &redirectDialer{}
			pinned := target
			pinned.HostKey = tt.pin
			err := tryDial(t, sshbridge.Config{Dialer: dialer}, pinned)
			checkVerdict(t, err, tt.want, addr, nil)
			if got := dialer.dials.Load(); got > tt.maxDials {
				t.Errorf("dials: got %d, want at most %d", got, tt.maxDials)
			}
			var hk *sshbridge.HostKeyError
			if errors.As(err, &hk) && !slices.Contains(fingerprints, hk.Fingerprint) {
				t.Errorf("Fingerprint: got %q, want one of the server's %q", hk.Fingerprint, fingerprints)
			}
		})
	}
}

// TestHostKeysSSHD runs the policies and pins against OpenSSH's sshd,
// which offers ed25519, ECDSA and RSA host keys.
func TestHostKeysSSHD(t *testing.T) {
	sshd := sshdtest.Start(t)
	target := sshbridge.Target{Host: sshd.Host, Port: sshd.Port, User: sshd.User, Password: sshd.Password}
	addr := target.Addr()
	if addr != sshd.Addr {
		t.Fatalf("Addr: got %q, want %q", addr, sshd.Addr)
	}
	byType := make(map[string]ssh.PublicKey)
	var fingerprints []string
	for _, k := range sshd.HostKeys {
		byType[k.Type()] = k
		fingerprints = append(fingerprints, ssh.FingerprintSHA256(k))
	}
	foreign := newHostSigner(t, "ed25519").PublicKey()
	all := strings.Split(strings.TrimSpace(string(sshd.KnownHosts())), "\n")

	type sshdCase struct {
		name   string
		policy sshbridge.HostKeyPolicy
		lines  []string // nil: no file
		pin    string
		want   sshbridge.HostKeyReason
		// presented is the key the refusal must name; nil: any of sshd's.
		presented ssh.PublicKey
	}
	tests := []sshdCase{
		{name: "accept", policy: sshbridge.PolicyAccept},
		{name: "known-hosts, all keys", policy: sshbridge.PolicyKnownHosts, lines: all},
		{name: "known-hosts, unknown", policy: sshbridge.PolicyKnownHosts, lines: []string{}, want: sshbridge.HostKeyUnknown},
		{name: "known-hosts, changed", policy: sshbridge.PolicyKnownHosts, lines: []string{khLine(addr, foreign)},
			want: sshbridge.HostKeyChanged, presented: byType[ssh.KeyAlgoED25519]},
		{name: "tofu, changed", policy: sshbridge.PolicyTOFU, lines: []string{khLine(addr, foreign)},
			want: sshbridge.HostKeyChanged, presented: byType[ssh.KeyAlgoED25519]},
		{name: "pin mismatch, accept", policy: sshbridge.PolicyAccept, pin: ssh.FingerprintSHA256(foreign), want: sshbridge.HostKeyPinMismatch},
		{name: "pin mismatch, known-hosts", policy: sshbridge.PolicyKnownHosts, lines: all, pin: authorizedLine(foreign),
			want: sshbridge.HostKeyPinMismatch},
	}
	for _, k := range sshd.HostKeys {
		tests = append(tests,
			sshdCase{name: "known-hosts, only " + k.Type(), policy: sshbridge.PolicyKnownHosts, lines: []string{khLine(addr, k)}},
			sshdCase{name: "known-hosts, only hashed " + k.Type(), policy: sshbridge.PolicyKnownHosts, lines: []string{khHashed(addr, k)}},
			sshdCase{name: "tofu, only " + k.Type(), policy: sshbridge.PolicyTOFU, lines: []string{khLine(addr, k)}},
			sshdCase{name: "pin key " + k.Type(), policy: sshbridge.PolicyKnownHosts, lines: []string{}, pin: authorizedLine(k)},
			sshdCase{name: "pin fingerprint " + k.Type(), policy: sshbridge.PolicyAccept, pin: ssh.FingerprintSHA256(k)},
		)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var file string
			if tt.lines != nil {
				file = filepath.Join(t.TempDir(), "known_hosts")
				writeFile(t, file, tt.lines...)
			}
			h, _ := newHostKeys(t, tt.policy, file)
			pinned := target
			pinned.HostKey = tt.pin
			err := tryDial(t, sshbridge.Config{HostKeys: h}, pinned)
			checkVerdict(t, err, tt.want, addr, tt.presented)
			var hk *sshbridge.HostKeyError
			if errors.As(err, &hk) && !slices.Contains(fingerprints, hk.Fingerprint) {
				t.Errorf("Fingerprint: got %q, want one of sshd's %q", hk.Fingerprint, fingerprints)
			}
			if file != "" {
				if got, want := readFile(t, file), fileContent(tt.lines); got != want {
					t.Errorf("file: got %q, want it unchanged, %q", got, want)
				}
			}
		})
	}

	t.Run("tofu learns", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "known_hosts")
		h, _ := newHostKeys(t, sshbridge.PolicyTOFU, file)
		for range 2 {
			checkVerdict(t, tryDial(t, sshbridge.Config{HostKeys: h}, target), "", addr, nil)
		}
		lines := strings.Split(strings.TrimSuffix(readFile(t, file), "\n"), "\n")
		if len(lines) != 1 || !slices.Contains(all, lines[0]) {
			t.Errorf("file: got %q, want one of sshd's known_hosts lines %q", lines, all)
		}
	})
}
