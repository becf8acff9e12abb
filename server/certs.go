package server

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// certCheckInterval is how often, at most, a certReloader looks at its files.
const certCheckInterval = time.Second

// certReloader serves a certificate and key from files, re-reading them when
// either file changes, so renewed certificates take effect without a restart.
// A change is noticed by a stat of both files (modification time, size and
// identity, so a symbolic link switched to a new file counts) done on a
// handshake at most once per second. A failed reload keeps the previous
// certificate and logs the error once per change.
//
// It is safe for concurrent use. Handshakes never wait for the files: while
// one handshake checks or reloads them, the others serve the current
// certificate. It starts no goroutine.
type certReloader struct {
	certFile, keyFile string
	log               *slog.Logger
	now               func() time.Time
	interval          time.Duration

	cert atomic.Pointer[tls.Certificate]

	mu       sync.Mutex // held while checking; guards the fields below
	checked  time.Time  // last check; zero before the first handshake
	certStat os.FileInfo
	keyStat  os.FileInfo
}

// newCertReloader loads the pair in certFile and keyFile (PEM, as for
// tls.LoadX509KeyPair) and fails if it cannot.
func newCertReloader(certFile, keyFile string, log *slog.Logger) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile, log: log, now: time.Now, interval: certCheckInterval}
	// Stat before reading, so that a change made during the read is seen
	// at the next check.
	certStat, keyStat, err := r.stat()
	if err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: load certificate %s and key %s: %w", certFile, keyFile, err)
	}
	r.cert.Store(&cert)
	r.certStat, r.keyStat = certStat, keyStat
	return r, nil
}

// GetCertificate returns the current certificate, first reloading it if the
// files changed. It fits tls.Config.GetCertificate.
func (r *certReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if r.mu.TryLock() {
		r.checkLocked()
		r.mu.Unlock()
	}
	return r.cert.Load(), nil
}

// TLSConfig returns a server configuration that takes its certificate from
// r, requires TLS 1.2 or later and offers HTTP/2 and HTTP/1.1. Serve with it
// through http.Server.ServeTLS(ln, "", "") or ListenAndServeTLS("", "").
func (r *certReloader) TLSConfig() *tls.Config {
	return &tls.Config{
		GetCertificate: r.GetCertificate,
		MinVersion:     tls.VersionTLS12,
		NextProtos:     []string{"h2", "http/1.1"},
	}
}

// checkLocked reloads the pair if the interval has passed and either file
// changed since the last check. r.mu must be held.
func (r *certReloader) checkLocked() {
	now := r.now()
	if now.Sub(r.checked) < r.interval {
		return
	}
	r.checked = now
	certStat, keyStat, err := r.stat()
	if err != nil {
		// A file that is missing for a moment (being replaced) is
		// logged once; the next stat that succeeds counts as a change.
		if r.certStat != nil {
			r.log.Error("tls: certificate not reloaded, keeping the previous one", "err", err)
		}
		r.certStat, r.keyStat = nil, nil
		return
	}
	if sameFile(r.certStat, certStat) && sameFile(r.keyStat, keyStat) {
		return
	}
	// Record the change before trying, so a bad pair is logged once, not
	// on every check until the files change again.
	r.certStat, r.keyStat = certStat, keyStat
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		r.log.Error("tls: certificate not reloaded, keeping the previous one",
			"cert", r.certFile, "key", r.keyFile, "err", err)
		return
	}
	r.cert.Store(&cert)
	r.log.Info("tls: certificate reloaded", "cert", r.certFile)
}

func (r *certReloader) stat() (certStat, keyStat os.FileInfo, err error) {
	if certStat, err = os.Stat(r.certFile); err != nil {
		return nil, nil, fmt.Errorf("tls: %w", err)
	}
	if keyStat, err = os.Stat(r.keyFile); err != nil {
		return nil, nil, fmt.Errorf("tls: %w", err)
	}
	return certStat, keyStat, nil
}

// sameFile reports whether a and b describe the same, unchanged file.
func sameFile(a, b os.FileInfo) bool {
	return a != nil && b != nil && os.SameFile(a, b) &&
		a.ModTime().Equal(b.ModTime()) && a.Size() == b.Size()
}
