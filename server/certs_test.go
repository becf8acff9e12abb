package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alfresco-ssh/alfresco-ssh/internal/fakeclock"
	"github.com/alfresco-ssh/alfresco-ssh/internal/syncbuf"
)

// testPair is a self-signed certificate for 127.0.0.1 and localhost, PEM
// encoded with its key.
type testPair struct {
	cert            *x509.Certificate
	certPEM, keyPEM []byte
}

func newTestPair(t *testing.T, name string) testPair {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name},
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return testPair{
		cert:    cert,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}
}

// writeFileAt writes data to path and sets its modification time to mtime,
// so that a change is seen even where file times are coarse.
func writeFileAt(t *testing.T, path string, data []byte, mtime time.Time) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

// serveTLS serves HTTPS on 127.0.0.1 with cfg until the test ends and
// returns the address. The handler answers with the request's protocol.
func serveTLS(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, r.Proto)
		}),
		TLSConfig: cfg,
		ErrorLog:  log.New(io.Discard, "", 0),
	}
	done := make(chan error, 1)
	go func() { done <- srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("ServeTLS: %v", err)
		}
	})
	return ln.Addr().String()
}

// servedCert does one handshake with addr and returns the certificate the
// server presented.
func servedCert(t *testing.T, addr string, roots *x509.CertPool) *x509.Certificate {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots})
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0]
}

func TestCertReloaderReloads(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	pairs := map[string]testPair{}
	roots := x509.NewCertPool()
	for _, name := range []string{"A", "B", "C", "D"} {
		p := newTestPair(t, name)
		pairs[name] = p
		roots.AddCert(p.cert)
	}
	mtime := time.Now().Add(-time.Hour)
	install := func(name string) {
		t.Helper()
		mtime = mtime.Add(time.Minute)
		writeFileAt(t, certFile, pairs[name].certPEM, mtime)
		writeFileAt(t, keyFile, pairs[name].keyPEM, mtime)
	}
	install("A")

	logs := &syncbuf.Buffer{}
	r, err := newCertReloader(certFile, keyFile, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatalf("newCertReloader: %v", err)
	}
	clock := fakeclock.New()
	r.now = clock.Now
	addr := serveTLS(t, r.TLSConfig())

	wantServed := func(step, name string) {
		t.Helper()
		got := servedCert(t, addr, roots)
		if !got.Equal(pairs[name].cert) {
			t.Fatalf("%s: served certificate %s, want %s", step, got.Subject.CommonName, name)
		}
	}
	wantErrors := func(step string, want int) {
		t.Helper()
		if got := strings.Count(logs.String(), "level=ERROR"); got != want {
			t.Fatalf("%s: got %d error lines, want %d; log:\n%s", step, got, want, logs)
		}
	}

	wantServed("initial", "A")
	install("B")
	wantServed("within a second of the last check", "A")
	clock.Advance(time.Second)
	wantServed("a second later", "B")
	if !strings.Contains(logs.String(), "certificate reloaded") {
		t.Fatalf("reload not logged; log:\n%s", logs)
	}

	mtime = mtime.Add(time.Minute)
	writeFileAt(t, certFile, []byte("not a certificate"), mtime)
	clock.Advance(time.Second)
	wantServed("after a broken replacement", "B")
	wantErrors("after a broken replacement", 1)
	clock.Advance(time.Second)
	wantServed("still broken", "B")
	wantErrors("still broken", 1)

	install("C")
	clock.Advance(time.Second)
	wantServed("after a fixed replacement", "C")

	if err := os.Remove(keyFile); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Second)
	wantServed("key file missing", "C")
	wantErrors("key file missing", 2)
	clock.Advance(time.Second)
	wantServed("key file still missing", "C")
	wantErrors("key file still missing", 2)

	mtime = mtime.Add(time.Minute)
	writeFileAt(t, keyFile, pairs["C"].keyPEM, mtime)
	clock.Advance(time.Second)
	wantServed("key file back", "C")
	wantErrors("key file back", 2)

	// A renewal that writes one file at a time: the new certificate with
	// the old key is refused, the key that follows completes the pair.
	mtime = mtime.Add(time.Minute)
	writeFileAt(t, certFile, pairs["D"].certPEM, mtime)
	clock.Advance(time.Second)
	wantServed("new certificate, old key", "C")
	wantErrors("new certificate, old key", 3)
	writeFileAt(t, keyFile, pairs["D"].keyPEM, mtime)
	clock.Advance(time.Second)
	wantServed("new key", "D")
	wantErrors("new key", 3)
}

func TestCertReloaderTLSConfig(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	p := newTestPair(t, "A")
	writeFileAt(t, certFile, p.certPEM, time.Now())
	writeFileAt(t, keyFile, p.keyPEM, time.Now())
	r, err := newCertReloader(certFile, keyFile, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("newCertReloader: %v", err)
	}
	addr := serveTLS(t, r.TLSConfig())
	roots := x509.NewCertPool()
	roots.AddCert(p.cert)

	for _, proto := range []string{"HTTP/2.0", "HTTP/1.1"} {
		t.Run(proto, func(t *testing.T) {
			tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: proto == "HTTP/2.0"}
			if proto == "HTTP/1.1" {
				tr.TLSClientConfig.NextProtos = []string{"http/1.1"}
			}
			defer tr.CloseIdleConnections()
			resp, err := (&http.Client{Transport: tr}).Get("https://" + addr + "/")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if string(body) != proto {
				t.Fatalf("served over %s, want %s", body, proto)
			}
		})
	}

	cfg := r.TLSConfig()
	if cfg.MinVersion != tls.VersionTLS12 {
		t.Errorf("MinVersion = %#x, want TLS 1.2 (%#x)", cfg.MinVersion, tls.VersionTLS12)
	}
	if got := strings.Join(cfg.NextProtos, ","); got != "h2,http/1.1" {
		t.Errorf("NextProtos = %s, want h2,http/1.1", got)
	}
	t.Run("TLS 1.1 refused", func(t *testing.T) {
		conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11})
		if err == nil {
			conn.Close()
			t.Fatal("TLS 1.1 handshake succeeded, want it refused")
		}
	})
}

func TestCertReloaderBadInitialFiles(t *testing.T) {
	a, b := newTestPair(t, "A"), newTestPair(t, "B")
	tests := []struct {
		name      string
		cert, key []byte // nil: file missing
	}{
		{name: "cert missing", key: a.keyPEM},
		{name: "key missing", cert: a.certPEM},
		{name: "cert garbage", cert: []byte("garbage"), key: a.keyPEM},
		{name: "key garbage", cert: a.certPEM, key: []byte("garbage")},
		{name: "empty files", cert: []byte{}, key: []byte{}},
		{name: "key of another certificate", cert: a.certPEM, key: b.keyPEM},
		{name: "files swapped", cert: a.keyPEM, key: a.certPEM},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
			if tt.cert != nil {
				writeFileAt(t, certFile, tt.cert, time.Now())
			}
			if tt.key != nil {
				writeFileAt(t, keyFile, tt.key, time.Now())
			}
			r, err := newCertReloader(certFile, keyFile, slog.New(slog.DiscardHandler))
			if err == nil || r != nil {
				t.Fatalf("newCertReloader = %v, %v; want nil and an error", r, err)
			}
		})
	}
}
