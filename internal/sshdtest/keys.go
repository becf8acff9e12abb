package sshdtest

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/crypto/ssh"
)

// keyKind says how one kind of client key is made and what PEM block it is.
type keyKind struct {
	name    string
	algo    string // ssh-keygen -t
	format  string // ssh-keygen -m; "" for OpenSSH's own format
	pemType string // the PEM block type the file must have
}

var keyKinds = []keyKind{
	{"rsa-pem", "rsa", "PEM", "RSA PRIVATE KEY"},
	{"rsa-pkcs8", "rsa", "PKCS8", "PRIVATE KEY"},
	{"rsa-openssh", "rsa", "", "OPENSSH PRIVATE KEY"},
	{"ecdsa-pem", "ecdsa", "PEM", "EC PRIVATE KEY"},
	{"ecdsa-pkcs8", "ecdsa", "PKCS8", "PRIVATE KEY"},
	{"ecdsa-openssh", "ecdsa", "", "OPENSSH PRIVATE KEY"},
	{"ed25519-pkcs8", "ed25519", "PKCS8", "PRIVATE KEY"},
	{"ed25519-openssh", "ed25519", "", "OPENSSH PRIVATE KEY"},
}

// KeyKinds returns the kinds that Server.Key accepts, in a fixed order.
func KeyKinds() []string {
	names := make([]string, len(keyKinds))
	for i, k := range keyKinds {
		names[i] = k.name
	}
	return names
}

// PEMType returns the PEM block type of a key kind ("RSA PRIVATE KEY", ...),
// or "" for an unknown kind.
func PEMType(kind string) string {
	for _, k := range keyKinds {
		if k.name == kind {
			return k.pemType
		}
	}
	return ""
}

// clientKeySet is the process-wide set of client keys.
type clientKeySet struct {
	keys       map[string][]byte // by kind name
	authorized []byte            // authorized_keys lines, one per algorithm
}

var clientKeys struct {
	once sync.Once
	set  *clientKeySet
	err  error
}

// loadClientKeys generates the client keys on first use; RSA key generation
// takes a second or more, so every Server of the process shares them.
func loadClientKeys() (*clientKeySet, error) {
	clientKeys.once.Do(func() {
		clientKeys.set, clientKeys.err = generateClientKeys()
	})
	return clientKeys.set, clientKeys.err
}

func generateClientKeys() (*clientKeySet, error) {
	dir, err := os.MkdirTemp("", "sshdtest-keys-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)

	// One key per algorithm, in OpenSSH format, generated in parallel.
	algos := []struct{ algo, bits string }{{"rsa", "3072"}, {"ecdsa", "256"}, {"ed25519", ""}}
	errs := make([]error, len(algos))
	var wg sync.WaitGroup
	for i, a := range algos {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = keygen(filepath.Join(dir, a.algo), a.algo, a.bits, "alfresco-sshdtest client")
		}()
	}
	wg.Wait()
	set := &clientKeySet{keys: map[string][]byte{}}
	for i, a := range algos {
		if errs[i] != nil {
			return nil, errs[i]
		}
		pub, err := os.ReadFile(filepath.Join(dir, a.algo+".pub"))
		if err != nil {
			return nil, err
		}
		set.authorized = append(set.authorized, pub...)
	}

	// The other encodings of the same keys.
	for _, k := range keyKinds {
		src := filepath.Join(dir, k.algo)
		var data []byte
		switch {
		case k.format == "":
			data, err = os.ReadFile(src)
		case k.algo == "ed25519":
			// ssh-keygen quietly writes ed25519 keys in its own format
			// whatever -m says; convert with the standard library.
			data, err = ed25519PKCS8(src)
		default:
			data, err = convert(src, filepath.Join(dir, k.name), k.format)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k.name, err)
		}
		if err := checkKey(data, k, set.authorized); err != nil {
			return nil, fmt.Errorf("%s: %w", k.name, err)
		}
		set.keys[k.name] = data
	}
	return set, nil
}

// keygen runs ssh-keygen for an unencrypted key; bits "" keeps the default.
func keygen(path, algo, bits, comment string) error {
	args := []string{"-q", "-t", algo, "-N", "", "-C", comment, "-f", path}
	if bits != "" {
		args = append(args, "-b", bits)
	}
	return run(nil, "ssh-keygen", args...)
}

// convert rewrites a copy of the key at src in the ssh-keygen -m format.
func convert(src, dst, format string) ([]byte, error) {
	data, err := os.ReadFile(src)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(dst, data, 0o600); err != nil {
		return nil, err
	}
	// -p changes the passphrase (from none to none) and writes the key
	// again, in the format -m names.
	if err := run(nil, "ssh-keygen", "-q", "-p", "-P", "", "-N", "", "-m", format, "-f", dst); err != nil {
		return nil, err
	}
	return os.ReadFile(dst)
}

func ed25519PKCS8(src string) ([]byte, error) {
	data, err := os.ReadFile(src)
	if err != nil {
		return nil, err
	}
	raw, err := ssh.ParseRawPrivateKey(data)
	if err != nil {
		return nil, err
	}
	k, ok := raw.(*ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("parsed as %T, want *ed25519.PrivateKey", raw)
	}
	der, err := x509.MarshalPKCS8PrivateKey(*k)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// checkKey makes sure a key has the PEM type of its kind, parses, and is
// authorized.
func checkKey(data []byte, k keyKind, authorized []byte) error {
	block, _ := pem.Decode(data)
	if block == nil {
		return fmt.Errorf("no PEM block")
	}
	if block.Type != k.pemType {
		return fmt.Errorf("PEM type %q, want %q", block.Type, k.pemType)
	}
	signer, err := ssh.ParsePrivateKey(data)
	if err != nil {
		return err
	}
	want := signer.PublicKey().Marshal()
	for rest := authorized; len(rest) > 0; {
		pub, _, _, r, err := ssh.ParseAuthorizedKey(rest)
		if err != nil {
			break
		}
		if bytes.Equal(pub.Marshal(), want) {
			return nil
		}
		rest = r
	}
	return fmt.Errorf("public key not in authorized_keys")
}

// generateHostKeys makes fresh host keys in dir, in parallel, and returns
// their public halves and private key files: ed25519, ecdsa, rsa (2048 bits,
// quicker to make than the default 3072).
func generateHostKeys(dir string) ([]ssh.PublicKey, []string, error) {
	algos := []struct{ algo, bits string }{{"ed25519", ""}, {"ecdsa", "256"}, {"rsa", "2048"}}
	files := make([]string, len(algos))
	errs := make([]error, len(algos))
	var wg sync.WaitGroup
	for i, a := range algos {
		files[i] = filepath.Join(dir, "ssh_host_"+a.algo+"_key")
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = keygen(files[i], a.algo, a.bits, "alfresco-sshdtest host")
		}()
	}
	wg.Wait()
	keys := make([]ssh.PublicKey, len(algos))
	for i := range algos {
		if errs[i] != nil {
			return nil, nil, errs[i]
		}
		data, err := os.ReadFile(files[i] + ".pub")
		if err != nil {
			return nil, nil, err
		}
		keys[i], _, _, _, err = ssh.ParseAuthorizedKey(data)
		if err != nil {
			return nil, nil, fmt.Errorf("%s.pub: %w", files[i], err)
		}
	}
	return keys, files, nil
}
