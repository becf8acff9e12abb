package sshbridge_test

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/alfresco-ssh/alfresco-ssh/sshbridge"
)

// authorizedLine returns key as "type base64", without a newline.
func authorizedLine(key ssh.PublicKey) string {
	return strings.TrimSuffix(string(ssh.MarshalAuthorizedKey(key)), "\n")
}

func TestParseHostKeyPin(t *testing.T) {
	ed := newHostSigner(t, "ed25519").PublicKey()
	ec := newHostSigner(t, "ecdsa").PublicKey()
	rsaKey := newHostSigner(t, "rsa").PublicKey()
	fp := ssh.FingerprintSHA256(ed)
	sum := sha256.Sum256(ed.Marshal())
	cert := &ssh.Certificate{Key: ed, CertType: ssh.HostCert, ValidPrincipals: []string{"h"}, ValidBefore: ssh.CertTimeInfinity}
	if err := cert.SignCert(rand.Reader, newHostSigner(t, "ed25519")); err != nil {
		t.Fatalf("sign certificate: %v", err)
	}
	edBlob := base64.StdEncoding.EncodeToString(ed.Marshal())

	tests := []struct {
		name string
		in   string
		// want is the pin's String(); "" with wantErr false is the zero pin.
		want    string
		wantFP  string
		wantErr bool
	}{
		{name: "empty", in: ""},
		{name: "blank", in: " \t "},
		{name: "fingerprint", in: fp, want: fp, wantFP: fp},
		{name: "fingerprint with space around", in: "  " + fp + "\n", want: fp, wantFP: fp},
		{name: "fingerprint lower-case prefix", in: "sha256:" + strings.TrimPrefix(fp, "SHA256:"), want: fp, wantFP: fp},
		{name: "fingerprint with padding", in: "SHA256:" + base64.StdEncoding.EncodeToString(sum[:]), want: fp, wantFP: fp},
		{name: "ed25519 key", in: authorizedLine(ed), want: authorizedLine(ed), wantFP: fp},
		{name: "key with comment", in: authorizedLine(ed) + " root@host with spaces: and colons", want: authorizedLine(ed), wantFP: fp},
		{name: "ecdsa key", in: authorizedLine(ec), want: authorizedLine(ec), wantFP: ssh.FingerprintSHA256(ec)},
		{name: "rsa key", in: authorizedLine(rsaKey), want: authorizedLine(rsaKey), wantFP: ssh.FingerprintSHA256(rsaKey)},

		{name: "fingerprint without body", in: "SHA256:", wantErr: true},
		{name: "fingerprint too short", in: fp[:len(fp)-2], wantErr: true},
		{name: "fingerprint too long", in: fp + "AAAA", wantErr: true},
		{name: "fingerprint not base64", in: "SHA256:" + strings.Repeat("!", 43), wantErr: true},
		{name: "MD5 fingerprint", in: "MD5:" + ssh.FingerprintLegacyMD5(ed), wantErr: true},
		{name: "bare MD5 fingerprint", in: ssh.FingerprintLegacyMD5(ed), wantErr: true},
		{name: "other hash", in: "SHA512:" + strings.TrimPrefix(fp, "SHA256:"), wantErr: true},
		{name: "known_hosts line", in: "[127.0.0.1]:2222 " + authorizedLine(ed), wantErr: true},
		{name: "known_hosts line with host name", in: "example.com " + authorizedLine(ed), wantErr: true},
		{name: "cert-authority marker", in: "@cert-authority * " + authorizedLine(ed), wantErr: true},
		{name: "certificate", in: authorizedLine(cert), wantErr: true},
		{name: "type does not match key", in: "ssh-rsa " + edBlob, wantErr: true},
		{name: "key only", in: edBlob, wantErr: true},
		{name: "type only", in: "ssh-ed25519", wantErr: true},
		{name: "truncated key", in: "ssh-ed25519 " + edBlob[:len(edBlob)-8], wantErr: true},
		{name: "not base64", in: "ssh-ed25519 not*base64", wantErr: true},
		{name: "two keys", in: authorizedLine(ed) + "\n" + authorizedLine(ec), wantErr: true},
		{name: "too long", in: "ssh-ed25519 " + edBlob + " " + strings.Repeat("x", 10000), wantErr: true},
		{name: "garbage", in: "hello", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pin, err := sshbridge.ParseHostKeyPin(tt.in)
			if tt.wantErr {
				if !errors.Is(err, sshbridge.ErrBadPin) {
					t.Fatalf("ParseHostKeyPin: got (%q, %v), want an error matching ErrBadPin", pin, err)
				}
				if msg := err.Error(); !strings.HasPrefix(msg, "invalid host key pin: ") || len(msg) > 200 {
					t.Errorf("error text: got %q, want a short \"invalid host key pin: ...\"", msg)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseHostKeyPin: got error %v, want nil", err)
			}
			if got := pin.String(); got != tt.want {
				t.Errorf("String(): got %q, want %q", got, tt.want)
			}
			if got := pin.Fingerprint(); got != tt.wantFP {
				t.Errorf("Fingerprint(): got %q, want %q", got, tt.wantFP)
			}
			if got, want := pin.IsZero(), tt.want == ""; got != want {
				t.Errorf("IsZero(): got %v, want %v", got, want)
			}
		})
	}
}

func TestHostKeyPinMatches(t *testing.T) {
	host := newHostSigner(t, "ed25519")
	other := newHostSigner(t, "ed25519").PublicKey()
	cert := &ssh.Certificate{
		Key: host.PublicKey(), CertType: ssh.HostCert, ValidPrincipals: []string{"h"},
		ValidBefore: uint64(time.Now().Add(time.Hour).Unix()),
	}
	if err := cert.SignCert(rand.Reader, newHostSigner(t, "ed25519")); err != nil {
		t.Fatalf("sign certificate: %v", err)
	}
	tests := []struct {
		pin  string
		key  ssh.PublicKey
		want bool
	}{
		{ssh.FingerprintSHA256(host.PublicKey()), host.PublicKey(), true},
		{authorizedLine(host.PublicKey()), host.PublicKey(), true},
		{ssh.FingerprintSHA256(host.PublicKey()), cert, true},
		{authorizedLine(host.PublicKey()), cert, true},
		{ssh.FingerprintSHA256(host.PublicKey()), other, false},
		{authorizedLine(host.PublicKey()), other, false},
		{"", host.PublicKey(), false},
	}
	for _, tt := range tests {
		pin, err := sshbridge.ParseHostKeyPin(tt.pin)
		if err != nil {
			t.Fatalf("ParseHostKeyPin(%q): %v", tt.pin, err)
		}
		if got := pin.Matches(tt.key); got != tt.want {
			t.Errorf("pin %q Matches(%s %s): got %v, want %v",
				tt.pin, tt.key.Type(), ssh.FingerprintSHA256(tt.key), got, tt.want)
		}
	}
}

// FuzzParseHostKeyPin checks that any string either parses to a pin whose
// canonical form parses to the same pin, or fails with ErrBadPin. The seed
// corpus is in testdata/fuzz/FuzzParseHostKeyPin. Run it longer with
//
//	go test -run '^$' -fuzz FuzzParseHostKeyPin -fuzztime 5m ./sshbridge/
func FuzzParseHostKeyPin(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		pin, err := sshbridge.ParseHostKeyPin(s)
		if err != nil {
			if !errors.Is(err, sshbridge.ErrBadPin) {
				t.Fatalf("ParseHostKeyPin(%q): got error %v, want one matching ErrBadPin", s, err)
			}
			return
		}
		again, err := sshbridge.ParseHostKeyPin(pin.String())
		if err != nil {
			t.Fatalf("ParseHostKeyPin(%q) = %q, which does not parse: %v", s, pin, err)
		}
		if again.String() != pin.String() || again.Fingerprint() != pin.Fingerprint() {
			t.Fatalf("ParseHostKeyPin(%q) = %q, which parses to %q", s, pin, again)
		}
		if !pin.IsZero() && !strings.HasPrefix(pin.Fingerprint(), "SHA256:") {
			t.Fatalf("Fingerprint(): got %q, want a SHA256: prefix", pin.Fingerprint())
		}
	})
}
