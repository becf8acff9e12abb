package sshbridge

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/ssh"
)

// ErrBadPin is matched by the error ParseHostKeyPin returns for a string
// that is not a host key pin.
var ErrBadPin = errors.New("invalid host key pin")

// maxPinLen bounds a pin string: an OpenSSH line for a 16384-bit RSA key is
// under 3 KiB.
const maxPinLen = 8 << 10

// HostKeyPin is the one host key a Target accepts, given as the key itself
// or as its SHA256 fingerprint. A pin overrides the HostKeys policy: a
// matching key is accepted and any other key refused, under every policy,
// except that a key marked @revoked in the known hosts file stays refused;
// a pinned connection never appends to the file. The zero HostKeyPin pins
// nothing.
type HostKeyPin struct {
	key ssh.PublicKey // the pinned key; nil for a fingerprint pin
	sum []byte        // SHA-256 of the key's wire form; nil for the zero pin
}

// ParseHostKeyPin parses a pin: an OpenSSH public key line
// ("ssh-ed25519 AAAA... comment") or a SHA256 fingerprint as ssh-keygen -l
// prints it ("SHA256:" and 43 base64 characters). Surrounding space is
// ignored and "" gives the zero pin. Certificates, MD5 fingerprints and
// known_hosts lines (with a host name or a marker in front) are refused.
// The error matches ErrBadPin and its text is written for the user who
// supplied s; it does not repeat s.
func ParseHostKeyPin(s string) (HostKeyPin, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return HostKeyPin{}, nil
	case len(s) > maxPinLen:
		return HostKeyPin{}, badPin("it is too long")
	case strings.ContainsAny(s, "\r\n"):
		return HostKeyPin{}, badPin("give one key, on one line")
	}
	fields := strings.Fields(s)
	if prefix, rest, ok := strings.Cut(s, ":"); ok && len(fields) == 1 {
		return parseFingerprintPin(prefix, rest)
	}
	if strings.HasPrefix(fields[0], "@") {
		return HostKeyPin{}, badPin("give the public key alone, without a known_hosts marker")
	}
	if len(fields) < 2 {
		return HostKeyPin{}, badPin(`want an OpenSSH public key ("ssh-ed25519 AAAA...") or a SHA256 fingerprint ("SHA256:...")`)
	}
	blob, err := base64.StdEncoding.DecodeString(fields[1])
	if err != nil {
		if len(fields) >= 3 {
			if _, err := base64.StdEncoding.DecodeString(fields[2]); err == nil {
				return HostKeyPin{}, badPin("give the public key alone, without a host name in front")
			}
		}
		return HostKeyPin{}, badPin("the public key is not valid base64")
	}
	key, err := ssh.ParsePublicKey(blob)
	if err != nil {
		return HostKeyPin{}, badPin("the public key could not be parsed")
	}
	if _, ok := key.(*ssh.Certificate); ok {
		return HostKeyPin{}, badPin("a certificate cannot be pinned; give the host's public key")
	}
	if key.Type() != fields[0] {
		return HostKeyPin{}, badPin("the key type in front does not match the key")
	}
	sum := sha256.Sum256(key.Marshal())
	return HostKeyPin{key: key, sum: sum[:]}, nil
}

func parseFingerprintPin(prefix, rest string) (HostKeyPin, error) {
	if !strings.EqualFold(prefix, "SHA256") {
		if strings.EqualFold(prefix, "MD5") || len(prefix) == 2 {
			// "MD5:aa:bb:..." or the bare "aa:bb:..." of old ssh-keygen.
			return HostKeyPin{}, badPin("MD5 fingerprints are not accepted; give the SHA256 fingerprint (ssh-keygen -l -E sha256)")
		}
		return HostKeyPin{}, badPin(`a fingerprint must start with "SHA256:"`)
	}
	// ssh-keygen omits the padding; accept it from tools that keep it.
	sum, err := base64.RawStdEncoding.DecodeString(strings.TrimSuffix(rest, "="))
	if err != nil || len(sum) != sha256.Size {
		return HostKeyPin{}, badPin(`a SHA256 fingerprint is "SHA256:" followed by 43 base64 characters`)
	}
	return HostKeyPin{sum: sum}, nil
}

func badPin(reason string) error {
	return fmt.Errorf("%w: %s", ErrBadPin, reason)
}

// IsZero reports whether p pins nothing.
func (p HostKeyPin) IsZero() bool { return p.sum == nil }

// String returns the pin in canonical form: the key type and base64 key
// without a comment, or "SHA256:" and the unpadded fingerprint; "" for the
// zero pin. ParseHostKeyPin accepts it.
func (p HostKeyPin) String() string {
	switch {
	case p.key != nil:
		return p.key.Type() + " " + base64.StdEncoding.EncodeToString(p.key.Marshal())
	case p.sum != nil:
		return "SHA256:" + base64.RawStdEncoding.EncodeToString(p.sum)
	}
	return ""
}

// Fingerprint returns the SHA256 fingerprint of the pinned key, as
// ssh.FingerprintSHA256 writes it; "" for the zero pin.
func (p HostKeyPin) Fingerprint() string {
	if p.sum == nil {
		return ""
	}
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(p.sum)
}

// Matches reports whether key is the pinned key. A host certificate
// matches when the key it certifies does: the server proved it holds that
// key. The zero pin matches nothing.
func (p HostKeyPin) Matches(key ssh.PublicKey) bool {
	if p.sum == nil {
		return false
	}
	sum := sha256.Sum256(plainKey(key).Marshal())
	return bytes.Equal(sum[:], p.sum)
}

// plainKey returns the key a certificate certifies, or key itself.
func plainKey(key ssh.PublicKey) ssh.PublicKey {
	if cert, ok := key.(*ssh.Certificate); ok {
		return cert.Key
	}
	return key
}
