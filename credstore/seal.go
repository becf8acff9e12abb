package credstore

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"

	"github.com/alfresco-ssh/alfresco-ssh/sshbridge"
)

// sealer turns credentials into AES-256-GCM ciphertext bound to their id
// (the id is the additional data, so a blob moved to another id does not
// open) and back.
type sealer struct {
	aead cipher.AEAD
}

// storedTarget is the plaintext form of a sealed entry.
type storedTarget struct {
	Host       string `json:"h"`
	Port       int    `json:"p"`
	User       string `json:"u"`
	Password   string `json:"pw,omitempty"`
	PrivateKey []byte `json:"k,omitempty"`
	Passphrase string `json:"pp,omitempty"`
	HostKey    string `json:"hk,omitempty"`
}

// newSealer derives the cipher from key (any length, typically the 32
// bytes of a Fernet key); nil means a fresh random key.
func newSealer(key []byte) (*sealer, error) {
	if key == nil {
		key = make([]byte, 32)
		rand.Read(key)
	}
	aesKey, err := hkdf.Key(sha256.New, key, nil, "alfresco-ssh credentials v1", 32)
	if err != nil {
		return nil, fmt.Errorf("credstore: derive credentials key: %w", err)
	}
	block, err := aes.NewCipher(aesKey)
	if err != nil {
		return nil, fmt.Errorf("credstore: credentials cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("credstore: credentials cipher: %w", err)
	}
	return &sealer{aead: aead}, nil
}

// seal returns nonce || ciphertext of t under id.
func (s *sealer) seal(id string, t sshbridge.Target) ([]byte, error) {
	plain, err := json.Marshal(storedTarget(t))
	if err != nil {
		return nil, fmt.Errorf("credstore: encode credentials: %w", err)
	}
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plain)+s.aead.Overhead())
	rand.Read(nonce)
	blob := s.aead.Seal(nonce, nonce, plain, []byte(id))
	clear(plain)
	return blob, nil
}

// open returns the credentials sealed in blob under id.
func (s *sealer) open(id string, blob []byte) (sshbridge.Target, error) {
	ns := s.aead.NonceSize()
	if len(blob) < ns {
		return sshbridge.Target{}, fmt.Errorf("credstore: open credentials: %d bytes is too short", len(blob))
	}
	plain, err := s.aead.Open(nil, blob[:ns], blob[ns:], []byte(id))
	if err != nil {
		return sshbridge.Target{}, fmt.Errorf("credstore: open credentials: %w", err)
	}
	var st storedTarget
	err = json.Unmarshal(plain, &st)
	clear(plain)
	if err != nil {
		return sshbridge.Target{}, fmt.Errorf("credstore: decode credentials: %w", err)
	}
	return sshbridge.Target(st), nil
}
