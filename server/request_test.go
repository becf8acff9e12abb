package server

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

// testKey returns an OpenSSH-format Ed25519 private key.
func testKey(t testing.TB) string {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(block))
}

func jsonRequest(body string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/create-credentials", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	return r
}

func multipartRequest(t testing.TB, fields map[string]string, key string) *http.Request {
	t.Helper()
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	for k, v := range fields {
		w.WriteField(k, v)
	}
	if key != "" {
		fw, err := w.CreateFormFile("ssh_key", "id_ed25519")
		if err != nil {
			t.Fatal(err)
		}
		fw.Write([]byte(key))
	}
	w.Close()
	r := httptest.NewRequest(http.MethodPost, "/create-credentials", &b)
	r.Header.Set("Content-Type", w.FormDataContentType())
	return r
}

func TestParseCredentialRequestJSON(t *testing.T) {
	tests := []struct {
		name       string
		body       string
		wantStatus int // 0: success
		wantHost   string
		wantPort   int
		wantMsg    string
	}{
		{"int port", `{"hostname":"h","username":"u","password":"p","port":2222}`, 0, "h", 2222, ""},
		{"string port", `{"hostname":"h","username":"u","password":"p","port":"2222"}`, 0, "h", 2222, ""},
		{"default port", `{"hostname":"h","username":"u","password":"p"}`, 0, "h", 22, ""},
		{"empty port", `{"hostname":"h","username":"u","password":"p","port":""}`, 0, "h", 22, ""},
		{"trimmed", `{"hostname":"  h.example ","username":" u ","password":" p ","port":" 22 "}`, 0, "h.example", 22, ""},
		{"ipv6", `{"hostname":"::1","username":"u","password":"p"}`, 0, "::1", 22, ""},
		{"unknown field ignored", `{"hostname":"h","username":"u","password":"p","extra":{"a":1}}`, 0, "h", 22, ""},
		{"int username", `{"hostname":"h","username":1000,"password":"p"}`, 0, "h", 22, ""},
		{"float port", `{"hostname":"h","username":"u","password":"p","port":22.5}`, 400, "", 0, `Field "port" must be a string or an integer`},
		{"float-looking port", `{"hostname":"h","username":"u","password":"p","port":22.0}`, 400, "", 0, "port"},
		{"bool", `{"hostname":"h","username":"u","password":true}`, 400, "", 0, `"password"`},
		{"null", `{"hostname":null,"username":"u","password":"p"}`, 400, "", 0, `"hostname"`},
		{"list", `{"hostname":["h"],"username":"u","password":"p"}`, 400, "", 0, `"hostname"`},
		{"object", `{"hostname":"h","username":{},"password":"p"}`, 400, "", 0, `"username"`},
		{"missing hostname", `{"username":"u","password":"p"}`, 400, "", 0, "hostname"},
		{"blank hostname", `{"hostname":"  ","username":"u","password":"p"}`, 400, "", 0, "hostname"},
		{"missing username", `{"hostname":"h","password":"p"}`, 400, "", 0, "username"},
		{"no password", `{"hostname":"h","username":"u"}`, 400, "", 0, "password"},
		{"port zero", `{"hostname":"h","username":"u","password":"p","port":0}`, 400, "", 0, "port"},
		{"port too big", `{"hostname":"h","username":"u","password":"p","port":65536}`, 400, "", 0, "port"},
		{"port negative", `{"hostname":"h","username":"u","password":"p","port":"-1"}`, 400, "", 0, "port"},
		{"port word", `{"hostname":"h","username":"u","password":"p","port":"ssh"}`, 400, "", 0, "port"},
		{"bad hostname", `{"hostname":"h h","username":"u","password":"p"}`, 400, "", 0, "hostname"},
		{"control char user", `{"hostname":"h","username":"u\u0000","password":"p"}`, 400, "", 0, "username"},
		{"malformed", `{"hostname":`, 400, "", 0, "Malformed JSON"},
		{"not object", `["h","u","p"]`, 400, "", 0, "Malformed JSON"},
		{"json null", `null`, 400, "", 0, "Malformed JSON"},
		{"empty body", ``, 400, "", 0, "Malformed JSON"},
		{"trailing data", `{"hostname":"h","username":"u","password":"p"} {}`, 400, "", 0, "Malformed JSON"},
		{"both password and key", `{"hostname":"h","username":"u","password":"p","ssh_key":"k"}`, 400, "", 0, "not both"},
		{"host key pin", `{"hostname":"h","username":"u","password":"p","host_key":"SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU"}`, 0, "h", 22, ""},
		{"bad host key pin", `{"hostname":"h","username":"u","password":"p","host_key":"SHA256:abc"}`, 400, "", 0, "Invalid host_key: a SHA256 fingerprint"},
		{"host key pin number", `{"hostname":"h","username":"u","password":"p","host_key":42}`, 400, "", 0, "Invalid host_key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target, err := parseCredentialRequest(jsonRequest(tt.body))
			if tt.wantStatus == 0 {
				if err != nil {
					t.Fatalf("got error %v, want success", err)
				}
				if target.Host != tt.wantHost || target.Port != tt.wantPort {
					t.Errorf("got %s:%d, want %s:%d", target.Host, target.Port, tt.wantHost, tt.wantPort)
				}
				return
			}
			re, ok := err.(*requestError)
			if !ok {
				t.Fatalf("got %v, want a request error with status %d", err, tt.wantStatus)
			}
			if re.status != tt.wantStatus || !strings.Contains(re.msg, tt.wantMsg) {
				t.Errorf("got %d %q, want %d containing %q", re.status, re.msg, tt.wantStatus, tt.wantMsg)
			}
		})
	}
}

func TestParseCredentialRequestJSONTrimsPassword(t *testing.T) {
	target, err := parseCredentialRequest(jsonRequest(`{"hostname":"h","username":"u","password":"  secret  "}`))
	if err != nil {
		t.Fatal(err)
	}
	if target.Password != "secret" || target.User != "u" {
		t.Errorf("got user %q password %q, want u and secret", target.User, target.Password)
	}
}

func TestParseCredentialRequestMultipart(t *testing.T) {
	key := testKey(t)
	tests := []struct {
		name       string
		fields     map[string]string
		key        string
		wantStatus int
		wantMsg    string
		wantPort   int
	}{
		{"key", map[string]string{"hostname": "h", "username": "u", "port": "2022"}, key, 0, "", 2022},
		{"key default port", map[string]string{"hostname": "h", "username": "u"}, key, 0, "", 22},
		{"password field", map[string]string{"hostname": "h", "username": "u", "password": "p"}, "", 0, "", 22},
		{"no key", map[string]string{"hostname": "h", "username": "u"}, "", 400, "password or an ssh_key", 0},
		{"both", map[string]string{"hostname": "h", "username": "u", "password": "p"}, key, 400, "not both", 0},
		{"bad key", map[string]string{"hostname": "h", "username": "u"}, "not a key", 400, "not a valid private key", 0},
		{"missing username", map[string]string{"hostname": "h"}, key, 400, "username", 0},
		{"bad port", map[string]string{"hostname": "h", "username": "u", "port": "70000"}, key, 400, "port", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target, err := parseCredentialRequest(multipartRequest(t, tt.fields, tt.key))
			if tt.wantStatus == 0 {
				if err != nil {
					t.Fatalf("got error %v, want success", err)
				}
				if target.Port != tt.wantPort {
					t.Errorf("got port %d, want %d", target.Port, tt.wantPort)
				}
				if tt.key != "" && len(target.PrivateKey) == 0 {
					t.Error("got no private key, want the uploaded one")
				}
				return
			}
			re, ok := err.(*requestError)
			if !ok || re.status != tt.wantStatus || !strings.Contains(re.msg, tt.wantMsg) {
				t.Errorf("got %v, want status %d containing %q", err, tt.wantStatus, tt.wantMsg)
			}
		})
	}
}

func TestParseCredentialRequestPassphrase(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	block, err := ssh.MarshalPrivateKeyWithPassphrase(priv, "", []byte("open sesame"))
	if err != nil {
		t.Fatal(err)
	}
	encrypted := string(pem.EncodeToMemory(block))
	plain := testKey(t)
	tests := []struct {
		name, key, passphrase string
		wantMsg               string // empty: success
	}{
		{"encrypted with passphrase", encrypted, "open sesame", ""},
		{"encrypted without passphrase", encrypted, "", "provide its passphrase"},
		{"wrong passphrase", encrypted, "open barley", "does not decrypt"},
		{"plain key with passphrase", plain, "open sesame", "not encrypted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fields := map[string]string{"hostname": "h", "username": "u"}
			if tt.passphrase != "" {
				fields["passphrase"] = tt.passphrase
			}
			target, err := parseCredentialRequest(multipartRequest(t, fields, tt.key))
			if tt.wantMsg == "" {
				if err != nil || target.Passphrase != tt.passphrase {
					t.Fatalf("got %v (passphrase kept: %v), want success", err, target.Passphrase == tt.passphrase)
				}
				return
			}
			if re, ok := err.(*requestError); !ok || re.status != 400 || !strings.Contains(re.msg, tt.wantMsg) {
				t.Errorf("got %v, want 400 containing %q", err, tt.wantMsg)
			}
			if err != nil && tt.passphrase != "" && strings.Contains(err.Error(), tt.passphrase) {
				t.Error("the error repeats the passphrase")
			}
		})
	}
	_, err = parseCredentialRequest(jsonRequest(`{"hostname":"h","username":"u","password":"p","passphrase":"x"}`))
	if re, ok := err.(*requestError); !ok || re.status != 400 {
		t.Errorf("passphrase with a password: got %v, want 400", err)
	}
}

func TestParseCredentialRequestContentType(t *testing.T) {
	tests := []struct {
		ct         string
		wantStatus int
	}{
		{"application/json; charset=utf-8", 0},
		{"Application/JSON", 0},
		{"text/plain", 415},
		{"", 415},
		{"application/x-www-form-urlencoded", 415},
		{"multipart/form-data", 415}, // no boundary
		{"application/json;;;", 415},
	}
	for _, tt := range tests {
		t.Run(tt.ct, func(t *testing.T) {
			r := jsonRequest(`{"hostname":"h","username":"u","password":"p"}`)
			r.Header.Set("Content-Type", tt.ct)
			_, err := parseCredentialRequest(r)
			if tt.wantStatus == 0 {
				if err != nil {
					t.Errorf("got %v, want success", err)
				}
				return
			}
			re, ok := err.(*requestError)
			if !ok || re.status != tt.wantStatus || !strings.HasPrefix(re.msg, "Unsupported Content-Type: ") {
				t.Errorf("got %v, want %d Unsupported Content-Type", err, tt.wantStatus)
			}
		})
	}
}
