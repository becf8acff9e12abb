package sshbridge_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/alfresco-ssh/alfresco-ssh/sshbridge"
)

// testKeys are generated once per test run: RSA generation is slow.
var testKeys = sync.OnceValues(func() (map[string]crypto.Signer, error) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	_, otherKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	return map[string]crypto.Signer{"rsa": rsaKey, "ecdsa": ecKey, "ed25519": edKey, "unauthorized": otherKey}, nil
})

// encryptedKey is an OpenSSH key protected by a passphrase, made once per
// test run: its bcrypt KDF is slow under the race detector.
var encryptedKey = sync.OnceValues(func() ([]byte, error) {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	b, err := ssh.MarshalPrivateKeyWithPassphrase(k, "enc", []byte("passphrase"))
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(b), nil
})

func keys(t *testing.T) map[string]crypto.Signer {
	t.Helper()
	k, err := testKeys()
	if err != nil {
		t.Fatalf("generate keys: %v", err)
	}
	return k
}

func sshPublicKey(t *testing.T, k crypto.Signer) ssh.PublicKey {
	t.Helper()
	pub, err := ssh.NewPublicKey(k.Public())
	if err != nil {
		t.Fatalf("public key: %v", err)
	}
	return pub
}

// Key encoders: each returns the PEM text of a private key.
func pkcs1(t *testing.T, k crypto.Signer) []byte {
	t.Helper()
	return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k.(*rsa.PrivateKey))})
}

func sec1(t *testing.T, k crypto.Signer) []byte {
	t.Helper()
	der, err := x509.MarshalECPrivateKey(k.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatalf("marshal SEC 1: %v", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
}

func pkcs8(t *testing.T, k crypto.Signer) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatalf("marshal PKCS#8: %v", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func openSSH(t *testing.T, k crypto.Signer) []byte {
	t.Helper()
	b, err := ssh.MarshalPrivateKey(k, "test key")
	if err != nil {
		t.Fatalf("marshal OpenSSH: %v", err)
	}
	return pem.EncodeToMemory(b)
}

func TestPrivateKeyLogin(t *testing.T) {
	k := keys(t)
	srv := newTestServer(t, serverOptions{
		User: "u",
		AuthorizedKeys: []ssh.PublicKey{
			sshPublicKey(t, k["rsa"]), sshPublicKey(t, k["ecdsa"]), sshPublicKey(t, k["ed25519"]),
		},
	})
	tests := []struct {
		name    string
		key     string
		encode  func(*testing.T, crypto.Signer) []byte
		wantErr error
	}{
		{"rsa pkcs1", "rsa", pkcs1, nil},
		{"rsa pkcs8", "rsa", pkcs8, nil},
		{"rsa openssh", "rsa", openSSH, nil},
		{"ecdsa sec1", "ecdsa", sec1, nil},
		{"ecdsa pkcs8", "ecdsa", pkcs8, nil},
		{"ecdsa openssh", "ecdsa", openSSH, nil},
		{"ed25519 pkcs8", "ed25519", pkcs8, nil},
		{"ed25519 openssh", "ed25519", openSSH, nil},
		{"unauthorized key", "unauthorized", openSSH, sshbridge.ErrAuth},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			priv := tt.encode(t, k[tt.key])
			signer, err := sshbridge.ParsePrivateKey(priv, "")
			if err != nil {
				t.Fatalf("ParsePrivateKey: got error %v, want nil", err)
			}
			want := sshPublicKey(t, k[tt.key])
			if got := signer.PublicKey(); !bytes.Equal(got.Marshal(), want.Marshal()) {
				t.Fatalf("ParsePrivateKey public key: got %s, want %s",
					ssh.FingerprintSHA256(got), ssh.FingerprintSHA256(want))
			}

			target := srv.Target()
			target.PrivateKey = priv
			r := recv(t, dialAsync(t, t.Context(), sshbridge.Config{Timeout: waitTimeout}, target), "Dial to return")
			if tt.wantErr != nil {
				if !errors.Is(r.err, tt.wantErr) {
					t.Fatalf("Dial: got error %v, want %v", r.err, tt.wantErr)
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

func TestParsePrivateKeyErrors(t *testing.T) {
	k := keys(t)
	const secret = "Zm9vYmFyc2VjcmV0a2V5bWF0ZXJpYWw" // looks like key material
	encrypted, err := encryptedKey()
	if err != nil {
		t.Fatalf("marshal encrypted key: %v", err)
	}
	pub := sshPublicKey(t, k["ed25519"])
	tests := []struct {
		name    string
		input   []byte
		wantErr error
	}{
		{"empty", []byte{}, sshbridge.ErrBadKey},
		{"garbage", []byte("not a key " + secret), sshbridge.ErrBadKey},
		{"pem with garbage body", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: []byte(secret)}), sshbridge.ErrBadKey},
		{"unknown pem type", pem.EncodeToMemory(&pem.Block{Type: "SECRET " + secret, Bytes: []byte(secret)}), sshbridge.ErrBadKey},
		{"public key", ssh.MarshalAuthorizedKey(pub), sshbridge.ErrBadKey},
		{"truncated openssh", openSSH(t, k["ed25519"])[:200], sshbridge.ErrBadKey},
		{"encrypted openssh", encrypted, sshbridge.ErrKeyEncrypted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			signer, err := sshbridge.ParsePrivateKey(tt.input, "")
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("ParsePrivateKey: got (%v, %v), want error %v", signer, err, tt.wantErr)
			}
			msg := err.Error()
			for _, leak := range []string{secret, base64.StdEncoding.EncodeToString([]byte(secret)), string(bytes.TrimSpace(tt.input))} {
				if leak != "" && strings.Contains(msg, leak) {
					t.Errorf("ParsePrivateKey error %q contains the input %q", msg, leak)
				}
			}
		})
	}

	// Dial reports the encrypted key before connecting anywhere.
	target := sshbridge.Target{Host: "127.0.0.1", Port: 1, User: "u", PrivateKey: encrypted}
	if _, err := sshbridge.Dial(t.Context(), sshbridge.Config{}, target, sshbridge.DefaultWindowSize); !errors.Is(err, sshbridge.ErrKeyEncrypted) {
		t.Errorf("Dial with encrypted key: got error %v, want %v", err, sshbridge.ErrKeyEncrypted)
	}
}
