package sshbridge

import (
	"bytes"
	"crypto/ed25519"
	"crypto/fips140"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// HostKeyPolicy says how Dial verifies the host key of a server when the
// Target does not pin one.
type HostKeyPolicy string

// The host key policies.
const (
	// PolicyAccept accepts every host key and logs its fingerprint, as the
	// server this gateway replaces did. It does not protect against a man
	// in the middle.
	PolicyAccept HostKeyPolicy = "accept"
	// PolicyKnownHosts accepts only the keys, and the certificates of the
	// authorities, that an OpenSSH known_hosts file lists for the host.
	PolicyKnownHosts HostKeyPolicy = "known-hosts"
	// PolicyTOFU (trust on first use) works as PolicyKnownHosts, except
	// that the key of a host the file does not know at all is accepted and
	// appended to the file.
	PolicyTOFU HostKeyPolicy = "tofu"
)

// ParseHostKeyPolicy returns the policy named s: "accept", "known-hosts" or
// "tofu".
func ParseHostKeyPolicy(s string) (HostKeyPolicy, error) {
	switch p := HostKeyPolicy(s); p {
	case PolicyAccept, PolicyKnownHosts, PolicyTOFU:
		return p, nil
	}
	return "", fmt.Errorf("sshbridge: unknown host key policy %q (want accept, known-hosts or tofu)", s)
}

// HostKeyReason says why a host key was refused.
type HostKeyReason string

// The reasons for refusing a host key.
const (
	// HostKeyUnknown: the known hosts file lists no key for the host.
	HostKeyUnknown HostKeyReason = "unknown"
	// HostKeyChanged: the file lists other keys for the host.
	HostKeyChanged HostKeyReason = "changed"
	// HostKeyRevoked: the file marks the key, or the authority that signed
	// its certificate, @revoked.
	HostKeyRevoked HostKeyReason = "revoked"
	// HostKeyPinMismatch: the Target pins another key.
	HostKeyPinMismatch HostKeyReason = "pin-mismatch"
	// HostKeyUnverifiable: the known hosts file could not be read or
	// written; the gateway's log says why.
	HostKeyUnverifiable HostKeyReason = "unverifiable"
)

// HostKeyError is the error of a refused host key. It matches ErrHostKey.
// Dial returns it wrapped: get it with errors.As.
type HostKeyError struct {
	Host        string        // the address dialled, "host:port"
	KeyType     string        // the type of key presented, e.g. "ssh-ed25519"
	Fingerprint string        // the key's SHA256 fingerprint; for a certificate, the certified key's
	Reason      HostKeyReason // why it was refused
}

func (e *HostKeyError) Error() string { return "sshbridge: " + e.UserMessage() }

// Is reports whether target is ErrHostKey.
func (e *HostKeyError) Is(target error) bool { return target == ErrHostKey }

// UserMessage says, for the person at the terminal, which key was refused
// and why, e.g. "the host key of 10.0.0.5:22 (ssh-ed25519 SHA256:…) has
// changed". It is a clause: no capital, no full stop. It names the host
// and the fingerprint but no file or internal detail.
func (e *HostKeyError) UserMessage() string {
	var why string
	switch e.Reason {
	case HostKeyUnknown:
		why = "is not known"
	case HostKeyChanged:
		why = "has changed: it does not match the key known for this host"
	case HostKeyRevoked:
		why = "has been revoked"
	case HostKeyPinMismatch:
		why = "does not match the pinned key"
	default:
		why = "could not be verified"
	}
	return fmt.Sprintf("the host key of %s (%s %s) %s", e.Host, e.KeyType, e.Fingerprint, why)
}

func refuse(host string, key ssh.PublicKey, reason HostKeyReason) *HostKeyError {
	return &HostKeyError{
		Host:        host,
		KeyType:     key.Type(),
		Fingerprint: ssh.FingerprintSHA256(plainKey(key)),
		Reason:      reason,
	}
}

// HostKeys verifies host keys by a HostKeyPolicy, against an OpenSSH
// known_hosts file for PolicyKnownHosts and PolicyTOFU. Make one with
// NewHostKeys and share it; a nil or zero HostKeys accepts any key, as
// PolicyAccept does. Safe for concurrent use.
//
// The file is stat'ed before every connection and re-read when its size,
// modification time or inode changed (and for a moment after each change,
// as the modification time is coarse), so edits take effect without a
// restart. It is read with golang.org/x/crypto/ssh/knownhosts: plain and
// hashed (|1|...) host names, [host]:port, the patterns * and ? and
// negation with !, @cert-authority and @revoked. Unlike OpenSSH, a port
// cannot be a pattern, and @revoked applies to every host. A file that
// cannot be read, or has lines but no valid one, refuses every key until it
// is fixed; lines that do not parse are skipped with a warning.
//
// Under PolicyTOFU, appends are serialized and re-check the file first, so
// concurrent first connections to a new host write it once. Only this
// process is coordinated: two gateways must not share one file.
type HostKeys struct {
	policy HostKeyPolicy
	file   string
	log    *slog.Logger

	mu sync.Mutex  // held while the file is stat'ed, read or appended to
	db *knownHosts // the file as last read; under mu
}

// NewHostKeys returns the verifier for policy. knownHostsFile is required
// by PolicyKnownHosts, where it must exist, and by PolicyTOFU, where it is
// created (mode 0600) when missing; PolicyAccept takes "". It logs the
// policy at startup: PolicyAccept as a warning. log may be nil.
func NewHostKeys(policy HostKeyPolicy, knownHostsFile string, log *slog.Logger) (*HostKeys, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if _, err := ParseHostKeyPolicy(string(policy)); err != nil {
		return nil, err
	}
	h := &HostKeys{policy: policy, file: knownHostsFile, log: log}
	if policy == PolicyAccept {
		if knownHostsFile != "" {
			return nil, errors.New("sshbridge: a known hosts file is used only by the known-hosts and tofu host key policies")
		}
		log.Warn("host keys are not verified (host key policy accept): a man in the middle can read passwords and sessions")
		return h, nil
	}
	if knownHostsFile == "" {
		return nil, fmt.Errorf("sshbridge: host key policy %s needs a known hosts file", policy)
	}
	if policy == PolicyTOFU {
		f, err := os.OpenFile(knownHostsFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("sshbridge: known hosts file: %w", err)
		}
		f.Close()
	}
	db := loadKnownHosts(knownHostsFile)
	switch {
	case db.missing:
		return nil, fmt.Errorf("sshbridge: known hosts file %s: %w", knownHostsFile, fs.ErrNotExist)
	case db.err != nil:
		return nil, fmt.Errorf("sshbridge: known hosts file %s: %w", knownHostsFile, db.err)
	}
	h.logLoad(nil, db)
	h.db = db
	log.Info("host keys are verified", "policy", policy, "known_hosts", knownHostsFile)
	return h, nil
}

// Policy returns the policy; that of a nil or zero HostKeys is
// PolicyAccept.
func (h *HostKeys) Policy() HostKeyPolicy {
	if h == nil || h.policy == "" {
		return PolicyAccept
	}
	return h.policy
}

// current returns the file's entries, reading the file again when it
// changed. Nil under PolicyAccept.
func (h *HostKeys) current() *knownHosts {
	if h.Policy() == PolicyAccept {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.refreshLocked(false)
}

func (h *HostKeys) refreshLocked(force bool) *knownHosts {
	fi, err := os.Stat(h.file)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		fi = nil
	case err != nil:
		force = true // no stamp to compare; reading reports the error
	}
	if !force && h.db.unchanged(fi) {
		return h.db
	}
	db := loadKnownHosts(h.file)
	h.logLoad(h.db, db)
	h.db = db
	return db
}

// logLoad logs a newly read file once per change of state.
func (h *HostKeys) logLoad(prev, db *knownHosts) {
	switch {
	case db.err != nil:
		if prev == nil || prev.err == nil || prev.err.Error() != db.err.Error() {
			h.log.Error("known hosts file unusable: refusing every host key until it is fixed",
				"file", h.file, "err", db.err)
		}
		return
	case db.missing:
		if h.policy == PolicyKnownHosts && (prev == nil || !prev.missing) {
			h.log.Warn("known hosts file is missing: refusing every host key", "file", h.file)
		}
		return
	}
	for _, line := range db.skipped {
		h.log.Warn("known hosts file: skipping a line that does not parse", "file", h.file, "line", line)
	}
	h.log.Debug("known hosts file read", "file", h.file)
}

// learn appends key as the key of host, unless the file, read again, now
// knows the host (another connection learned it first): then key is
// checked against it. It returns "" when key is accepted.
func (h *HostKeys) learn(host string, remote net.Addr, key ssh.PublicKey) HostKeyReason {
	h.mu.Lock()
	defer h.mu.Unlock()
	if reason := h.refreshLocked(false).verify(host, remote, key); reason != HostKeyUnknown {
		return reason
	}
	plain := plainKey(key)
	if err := appendLine(h.file, knownhosts.Line([]string{host}, plain)); err != nil {
		h.log.Error("known hosts file: cannot record a new host key", "file", h.file, "host", host, "err", err)
		return HostKeyUnverifiable
	}
	h.log.Info("host key trusted on first use and recorded", "host", host,
		"type", plain.Type(), "fingerprint", ssh.FingerprintSHA256(plain), "file", h.file)
	if reason := h.refreshLocked(true).verify(host, remote, key); reason != "" {
		// Appended, yet not found: the file was replaced meanwhile.
		return HostKeyUnverifiable
	}
	return ""
}

// appendLine appends line to the file, creating it with mode 0600, after a
// newline if the file does not end with one.
func appendLine(path, line string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if n := fi.Size(); n > 0 {
		last := make([]byte, 1)
		if _, err := f.ReadAt(last, n-1); err != nil {
			return err
		}
		if last[0] != '\n' {
			line = "\n" + line
		}
	}
	if _, err := f.WriteString(line + "\n"); err != nil {
		return err
	}
	return f.Sync()
}

// racyWindow is how long after a file's modification time its size and
// time stamp cannot tell a later change apart: file systems keep the
// modification time coarsely (ext4 to the kernel tick; some to seconds).
const racyWindow = 2 * time.Second

// knownHosts is a known_hosts file as read at one time. It is not changed
// after loadKnownHosts returns it.
type knownHosts struct {
	fi       fs.FileInfo // nil when missing or unreadable
	loadedAt time.Time
	missing  bool                // the file does not exist: no entries
	err      error               // the file cannot be used: every key is refused
	check    ssh.HostKeyCallback // knownhosts' check; nil when err != nil
	caLines  map[int]bool        // line numbers of @cert-authority entries
	skipped  []int               // line numbers of lines that do not parse
}

// unchanged reports whether the file, stat'ed as fi (nil: it does not
// exist), is certainly still the one db was read from.
func (db *knownHosts) unchanged(fi fs.FileInfo) bool {
	switch {
	case db == nil:
		return false
	case fi == nil:
		return db.missing
	case db.fi == nil:
		return false
	}
	return fi.Size() == db.fi.Size() && fi.ModTime().Equal(db.fi.ModTime()) && os.SameFile(fi, db.fi) &&
		db.loadedAt.Sub(fi.ModTime()) > racyWindow
}

// noKnownHosts is the check of an empty file.
var noKnownHosts = sync.OnceValues(func() (ssh.HostKeyCallback, error) { return knownhosts.New() })

// loadKnownHosts reads the file at path. knownhosts reads the file by name
// and keeps only the host key callback, so the file is read before and
// after it too: equal contents mean knownhosts saw them, and give the line
// numbers of the @cert-authority entries it does not expose.
func loadKnownHosts(path string) *knownHosts {
	for range 3 {
		now := time.Now()
		fi, err := os.Stat(path)
		if errors.Is(err, fs.ErrNotExist) {
			check, err := noKnownHosts()
			if err != nil {
				return &knownHosts{err: err}
			}
			return &knownHosts{missing: true, check: check, loadedAt: now}
		}
		if err != nil {
			return &knownHosts{err: err}
		}
		before, err := os.ReadFile(path)
		if err != nil {
			return &knownHosts{err: err}
		}
		check, checkErr := knownhosts.New(path)
		after, err := os.ReadFile(path)
		if err != nil {
			return &knownHosts{err: err}
		}
		if !bytes.Equal(before, after) {
			continue
		}
		if checkErr != nil {
			// Keep the stamp: the error stands until the file changes.
			return &knownHosts{fi: fi, loadedAt: now, err: checkErr}
		}
		caLines, skipped := scanKnownHosts(before)
		return &knownHosts{fi: fi, loadedAt: now, check: check, caLines: caLines, skipped: skipped}
	}
	return &knownHosts{err: errors.New("the file kept changing while it was read")}
}

// scanKnownHosts returns the numbers of the lines that are @cert-authority
// entries, and of those that do not parse, counting lines as knownhosts
// does.
func scanKnownHosts(b []byte) (caLines map[int]bool, skipped []int) {
	caLines = make(map[int]bool)
	for i, line := range bytes.Split(b, []byte("\n")) {
		line = bytes.Trim(line, " \t\r")
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		fields := strings.Fields(string(line))
		marker := ""
		if strings.HasPrefix(fields[0], "@") {
			marker, fields = fields[0], fields[1:]
		}
		if !validEntry(marker, fields) {
			skipped = append(skipped, i+1)
			continue
		}
		if marker == "@cert-authority" {
			caLines[i+1] = true
		}
	}
	return caLines, skipped
}

// validEntry reports whether the fields after the marker make an entry
// knownhosts accepts: host patterns, key type, base64 key of that type.
func validEntry(marker string, fields []string) bool {
	if marker != "" && marker != "@cert-authority" && marker != "@revoked" || len(fields) < 3 {
		return false
	}
	if pattern := fields[0]; strings.HasPrefix(pattern, "|") {
		parts := strings.Split(pattern, "|")
		if len(parts) != 4 || parts[1] != "1" {
			return false
		}
		for _, p := range parts[2:] {
			if _, err := base64.StdEncoding.DecodeString(p); err != nil {
				return false
			}
		}
	}
	blob, err := base64.StdEncoding.DecodeString(fields[2])
	if err != nil {
		return false
	}
	key, err := ssh.ParsePublicKey(blob)
	return err == nil && key.Type() == fields[1]
}

// verify checks key, presented by host (as dialled, "host:port"), against
// the file and returns "" when it is accepted. As OpenSSH does, a
// certificate no listed authority vouches for (unknown authority, wrong
// principal, expired) is checked as the plain key it certifies.
func (db *knownHosts) verify(host string, remote net.Addr, key ssh.PublicKey) HostKeyReason {
	if db.err != nil {
		return HostKeyUnverifiable
	}
	if db.revoked(host, remote, key) {
		return HostKeyRevoked
	}
	if cert, ok := key.(*ssh.Certificate); ok {
		if db.check(host, remote, cert) == nil {
			return ""
		}
		key = cert.Key
	}
	known, _ := db.lookup(host)
	if len(known) == 0 {
		return HostKeyUnknown
	}
	for _, k := range known {
		if bytes.Equal(k.Marshal(), key.Marshal()) {
			return ""
		}
	}
	return HostKeyChanged
}

// revoked reports whether the file marks key @revoked or, for a
// certificate, its key or its authority.
func (db *knownHosts) revoked(host string, remote net.Addr, key ssh.PublicKey) bool {
	keys := []ssh.PublicKey{plainKey(key)}
	if cert, ok := key.(*ssh.Certificate); ok {
		keys = append(keys, cert.SignatureKey)
	}
	for _, k := range keys {
		var r *knownhosts.RevokedError
		if errors.As(db.check(host, remote, k), &r) {
			return true
		}
	}
	return false
}

// probeKey is in no known_hosts file: checking it makes knownhosts list
// every entry that matches a host.
var probeKey = sync.OnceValues(func() (ssh.PublicKey, error) {
	pub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		return nil, err
	}
	return ssh.NewPublicKey(pub)
})

// lookup returns the host keys the file lists for host, and whether an
// @cert-authority entry matches host.
func (db *knownHosts) lookup(host string) (keys []ssh.PublicKey, authority bool) {
	if db.err != nil {
		return nil, false
	}
	probe, err := probeKey()
	if err != nil {
		return nil, false
	}
	var ke *knownhosts.KeyError
	if !errors.As(db.check(host, &net.TCPAddr{}, probe), &ke) {
		return nil, false
	}
	for _, k := range ke.Want {
		if db.caLines[k.Line] {
			authority = true
			continue
		}
		keys = append(keys, k.Key)
	}
	return keys, authority
}

// hostKeyCheck verifies the host key for one Dial, over its attempts.
// Its callback may run on x/crypto's goroutines, also at re-keying after
// Dial returned; retry runs on Dial's goroutine only.
type hostKeyCheck struct {
	h    *HostKeys   // may be nil
	db   *knownHosts // the file when Dial started; nil under PolicyAccept
	host string      // "host:port" as dialled
	pin  HostKeyPin
	log  *slog.Logger

	mismatch error // the first pin mismatch; set by retry
}

func (h *HostKeys) newCheck(host string, pin HostKeyPin, log *slog.Logger) *hostKeyCheck {
	return &hostKeyCheck{h: h, db: h.current(), host: host, pin: pin, log: log}
}

// algorithms returns the host key algorithms to offer first, nil for
// x/crypto's default. The server presents one host key, of the first
// algorithm in the client's list that it supports, so the algorithms of the
// pinned key, or of the keys the file knows for the host, go first (all
// certificate algorithms first when an authority is listed for the host).
// They are ordered, not restricted: a server without such a key presents
// another, which is refused with its fingerprint.
func (c *hostKeyCheck) algorithms() []string {
	if c.pin.key != nil {
		return preferAlgorithms(false, []string{c.pin.key.Type()})
	}
	if c.db == nil || !c.pin.IsZero() {
		return nil
	}
	keys, authority := c.db.lookup(c.host)
	if len(keys) == 0 && !authority {
		return nil
	}
	types := make([]string, len(keys))
	for i, k := range keys {
		types[i] = k.Type()
	}
	return preferAlgorithms(authority, types)
}

// callback is the ssh.HostKeyCallback.
func (c *hostKeyCheck) callback(host string, remote net.Addr, key ssh.PublicKey) error {
	if c.db != nil && c.db.err == nil && c.db.revoked(host, remote, key) {
		return refuse(host, key, HostKeyRevoked)
	}
	if !c.pin.IsZero() {
		if !c.pin.Matches(key) {
			return refuse(host, key, HostKeyPinMismatch)
		}
		c.log.Debug("host key matches the pin", "host", host, "type", key.Type())
		return nil
	}
	if c.db == nil {
		c.log.Info("accepted host key without verification",
			"host", host, "type", key.Type(), "fingerprint", ssh.FingerprintSHA256(plainKey(key)))
		return nil
	}
	reason := c.db.verify(host, remote, key)
	if reason == HostKeyUnknown && c.h.policy == PolicyTOFU {
		reason = c.h.learn(host, remote, key)
	}
	if reason != "" {
		return refuse(host, key, reason)
	}
	c.log.Debug("host key verified", "host", host, "type", key.Type())
	return nil
}

// maxAttempts bounds the connections of one Dial; see retry.
const maxAttempts = 8

// retry is called after an attempt with the host key algorithms algos
// failed with err. A fingerprint pin does not say the key's type, so the
// server may present another of its keys: then the attempt is repeated
// without that key's algorithms, until the pinned key is presented or the
// server has no other. It returns the algorithms for the next attempt, or
// nil and the error Dial returns.
func (c *hostKeyCheck) retry(attempt int, algos []string, err error) ([]string, error) {
	var hk *HostKeyError
	var neg *ssh.AlgorithmNegotiationError
	switch {
	case c.pin.key == nil && !c.pin.IsZero() && errors.As(err, &hk) && hk.Reason == HostKeyPinMismatch:
		if c.mismatch == nil {
			c.mismatch = err
		}
		if algos == nil {
			algos = allHostKeyAlgorithms()
		}
		family := keyFamily(hk.KeyType)
		next := slices.DeleteFunc(slices.Clone(algos), func(a string) bool { return keyFamily(a) == family })
		if len(next) == 0 || len(next) == len(algos) || attempt >= maxAttempts {
			return nil, c.mismatch
		}
		return next, nil
	case c.mismatch != nil && errors.As(err, &neg) && neg.What == "host key":
		return nil, c.mismatch
	}
	return nil, err
}

// allHostKeyAlgorithms returns every host key algorithm x/crypto offers by
// default.
func allHostKeyAlgorithms() []string {
	algos := ssh.SupportedAlgorithms().HostKeys
	if !fips140.Enabled() {
		algos = append(algos, ssh.InsecureAlgorithms().HostKeys...)
	}
	return algos
}

// preferAlgorithms returns allHostKeyAlgorithms reordered: certificate
// algorithms first if certs, then the plain algorithms for the key types,
// then the rest.
func preferAlgorithms(certs bool, keyTypes []string) []string {
	var first, known, rest []string
	for _, a := range allHostKeyAlgorithms() {
		isCert := strings.Contains(a, "-cert-v01@")
		switch {
		case certs && isCert:
			first = append(first, a)
		case !isCert && slices.Contains(keyTypes, keyFamily(a)):
			known = append(known, a)
		default:
			rest = append(rest, a)
		}
	}
	return slices.Concat(first, known, rest)
}

// keyFamily returns the type of the plain key behind a key type or host
// key algorithm: "ssh-rsa" for "rsa-sha2-256-cert-v01@openssh.com".
func keyFamily(algo string) string {
	if i := strings.Index(algo, "-cert-v01@"); i >= 0 {
		algo = algo[:i]
	}
	switch algo {
	case ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSASHA512:
		return ssh.KeyAlgoRSA
	}
	return algo
}
