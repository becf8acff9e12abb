package sshbridge

import (
	"crypto/x509"
	"errors"
	"fmt"

	"golang.org/x/crypto/ssh"
)

// Errors about an encrypted private key.
var (
	ErrKeyEncrypted    = errors.New("private key is encrypted with a passphrase")
	ErrWrongPassphrase = errors.New("private key passphrase is wrong")
	ErrKeyNotEncrypted = errors.New("private key is not encrypted, but a passphrase was given")
)

// ParsePrivateKey parses an RSA, ECDSA, Ed25519 or DSA private key in PEM
// (PKCS#1, PKCS#8, SEC 1) or OpenSSH format into a signer, decrypting it
// with passphrase when it is encrypted. The error never contains key
// material.
func ParsePrivateKey(pemBytes []byte, passphrase string) (ssh.Signer, error) {
	signer, err := ssh.ParsePrivateKey(pemBytes)
	var missing *ssh.PassphraseMissingError
	switch {
	case err == nil && passphrase != "":
		return nil, ErrKeyNotEncrypted
	case err == nil:
		return signer, nil
	case !errors.As(err, &missing):
		return nil, fmt.Errorf("sshbridge: parse private key: %w", ErrBadKey)
	case passphrase == "":
		return nil, ErrKeyEncrypted
	}
	signer, err = ssh.ParsePrivateKeyWithPassphrase(pemBytes, []byte(passphrase))
	if errors.Is(err, x509.IncorrectPasswordError) {
		return nil, ErrWrongPassphrase
	}
	if err != nil {
		return nil, fmt.Errorf("sshbridge: parse encrypted private key: %w", ErrBadKey)
	}
	return signer, nil
}
