package server

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/alfresco-ssh/alfresco-ssh/internal/testdeps"
)

// TestDSAKeyRefused: the README and PROTOCOL.md say DSA keys are refused
// (OpenSSH dropped them; so did golang.org/x/crypto/ssh). A DSA key made
// by ssh-keygen, in both of its formats, gets a 400 that names the kinds
// that work, instead of credentials that could never log in.
func TestDSAKeyRefused(t *testing.T) {
	s := newTestServer(t, Config{})
	for _, format := range []string{"PEM", "RFC4716"} {
		path := filepath.Join(t.TempDir(), "id_dsa")
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "dsa", "-m", format, "-N", "", "-f", path).CombinedOutput(); err != nil {
			testdeps.Missing(t, "ssh-keygen cannot make DSA keys here: "+string(out))
		}
		key, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		res, m, body := do(t, s, multipartRequest(t, map[string]string{"hostname": "h", "username": "u"}, string(key)))
		if want := "ssh_key is not a valid private key (RSA, ECDSA or Ed25519, in PEM or OpenSSH format)"; res.StatusCode != 400 || m["error"] != want {
			t.Errorf("%s: got %d %s, want 400 %q", format, res.StatusCode, body, want)
		}
	}
}
