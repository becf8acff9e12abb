package sshbridge

import (
	"errors"
	"fmt"

	"golang.org/x/crypto/ssh"
)

// ErrKeyEncrypted reports a private key protected by a passphrase.
var ErrKeyEncrypted = errors.New("private key is encrypted with a passphrase")

// ParsePrivateKey parses an RSA, ECDSA, Ed25519 or DSA private key in PEM
// (PKCS#1, PKCS#8, SEC 1) or OpenSSH format into a signer. The error never
// contains key material.
func ParsePrivateKey(pemBytes []byte) (ssh.Signer, error) {
	signer, err := ssh.ParsePrivateKey(pemBytes)
	if err != nil {
		var missing *ssh.PassphraseMissingError
		if errors.As(err, &missing) {
			return nil, ErrKeyEncrypted
		}
		return nil, fmt.Errorf("sshbridge: parse private key: %w", ErrBadKey)
	}
	return signer, nil
}
