package server

import (
	"crypto/ed25519"
	"encoding/pem"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/alfresco-ssh/alfresco-ssh/internal/sshdtest"
)

// TestSecretsNeverLogged runs sessions with every kind of secret, with debug
// logging, checks that each went as it should, and that no password, key or
// passphrase appears in any log line, error text or closing message.
func TestSecretsNeverLogged(t *testing.T) {
	sshd := sshdtest.Start(t)
	g := startGateway(t, Config{})

	// An encrypted copy of an authorized key.
	raw, err := ssh.ParseRawPrivateKey(sshd.Key(t, "ed25519-openssh"))
	if err != nil {
		t.Fatal(err)
	}
	const passphrase = "correct horse battery staple 42"
	block, err := ssh.MarshalPrivateKeyWithPassphrase(*raw.(*ed25519.PrivateKey), "", []byte(passphrase))
	if err != nil {
		t.Fatal(err)
	}
	encrypted := pem.EncodeToMemory(block)
	plainKey := sshd.Key(t, "rsa-pem")
	wrongPassword := "wrong-" + sshd.Password

	// run creates credentials and runs a session with them; it checks that
	// the session went as want says: "shell" (a prompt, then exit), a
	// closing text, or a 400 reply carrying that text.
	var outputs []string
	run := func(fields map[string]string, key []byte, want string) {
		t.Helper()
		status, m := postTo(t, g.url+"/create-credentials", multipartRequest(t, fields, string(key)))
		outputs = append(outputs, fmt.Sprint(m))
		if status != 200 {
			if msg, _ := m["error"].(string); status != 400 || !strings.Contains(msg, want) {
				t.Errorf("create: got %d %v, want 200 or 400 %q", status, m, want)
			}
			return
		}
		// Decrypting the key (bcrypt) takes seconds on a loaded machine
		// with the race detector.
		steps := []step{{Expect: prompt, TimeoutMs: 60000}, {Send: "exit\n"}}
		if want != "shell" {
			steps = nil
		}
		r := runClient(t, scenario{URL: g.url, Transports: []string{"websocket"}, WaitEnd: true, TimeoutMs: 90000,
			Start: map[string]any{"credentials_uuid": m["connection_uuid"]}, Steps: steps})
		if r.Closing != nil {
			outputs = append(outputs, r.Closing.Output)
		}
		switch {
		case want == "shell" && (r.Problem() != "" || r.Closing == nil || !strings.Contains(r.Closing.Output, "Connection closed")):
			t.Errorf("got %s, closing %v; want a shell that exits", r.Problem(), r.Closing)
		case want != "shell":
			checkClosed(t, r, want)
		}
	}
	base := func(extra map[string]string) map[string]string {
		f := map[string]string{"hostname": sshd.Host, "port": fmt.Sprint(sshd.Port), "username": sshd.User}
		for k, v := range extra {
			f[k] = v
		}
		return f
	}
	run(base(map[string]string{"password": sshd.Password}), nil, "shell")
	run(base(map[string]string{"password": wrongPassword}), nil, "authentication failed")
	run(base(nil), plainKey, "shell")
	run(base(map[string]string{"passphrase": passphrase}), encrypted, "shell")
	run(base(map[string]string{"passphrase": "wrong " + passphrase}), encrypted, "passphrase does not decrypt")
	run(base(nil), encrypted, "provide its passphrase")

	logs := g.logs.String()
	if !strings.Contains(logs, "level=DEBUG") {
		t.Fatal("got no debug lines, want debug logging on")
	}
	secrets := map[string]string{"password": sshd.Password, "wrong password": wrongPassword, "passphrase": passphrase}
	// Any line of base64 from the keys' bodies.
	for i, key := range [][]byte{plainKey, encrypted} {
		for _, line := range regexp.MustCompile(`(?m)^[A-Za-z0-9+/=]{40,}$`).FindAllString(string(key), -1) {
			secrets[fmt.Sprintf("key %d line", i)] = line
		}
	}
	for name, secret := range secrets {
		for _, text := range append([]string{logs}, outputs...) {
			if strings.Contains(text, secret) {
				t.Errorf("the %s appears in %q", name, truncate(text, 200))
			}
		}
	}
}
