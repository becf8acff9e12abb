package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"unicode"

	"github.com/alfresco-ssh/alfresco-ssh/sshbridge"
)

// requestError is a client error with the status and the message the
// caller sees.
type requestError struct {
	status int
	msg    string
}

func (e *requestError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &requestError{http.StatusBadRequest, fmt.Sprintf(format, args...)}
}

var errTooLarge = &requestError{http.StatusRequestEntityTooLarge, "Request body too large"}

// credentialFields are the request fields, trimmed; a field that was not
// sent is absent from the map.
type credentialFields map[string]string

var knownFields = map[string]bool{
	"hostname": true, "username": true, "password": true, "port": true, "ssh_key": true, "passphrase": true,
	"host_key": true,
}

// parseCredentialRequest reads a create-credentials request (JSON with a
// password, or multipart with an ssh_key file) into a Target. Errors are
// *requestError values. The body must already be size-limited.
func parseCredentialRequest(r *http.Request) (sshbridge.Target, error) {
	ct := r.Header.Get("Content-Type")
	mediaType, params, err := mime.ParseMediaType(ct)
	var fields credentialFields
	switch {
	case err == nil && mediaType == "application/json":
		fields, err = readJSONFields(r.Body)
	case err == nil && mediaType == "multipart/form-data" && params["boundary"] != "":
		fields, err = readMultipartFields(r)
	default:
		if len(ct) > 100 {
			ct = ct[:100]
		}
		return sshbridge.Target{}, &requestError{http.StatusUnsupportedMediaType, "Unsupported Content-Type: " + ct}
	}
	if err != nil {
		var maxErr *http.MaxBytesError
		if errors.As(err, &maxErr) {
			return sshbridge.Target{}, errTooLarge
		}
		return sshbridge.Target{}, err
	}
	return fields.target()
}

func readJSONFields(body io.Reader) (credentialFields, error) {
	dec := json.NewDecoder(body)
	dec.UseNumber()
	var raw map[string]any
	if err := dec.Decode(&raw); err != nil {
		var maxErr *http.MaxBytesError
		if errors.As(err, &maxErr) {
			return nil, err
		}
		return nil, badRequest("Malformed JSON body: expected an object with hostname, username, password and optional port")
	}
	if raw == nil {
		return nil, badRequest("Malformed JSON body: expected an object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, badRequest("Malformed JSON body: unexpected data after the object")
	}
	fields := credentialFields{}
	for name, v := range raw {
		if !knownFields[name] {
			continue
		}
		switch v := v.(type) {
		case string:
			fields[name] = strings.TrimSpace(v)
		case json.Number:
			if _, err := strconv.ParseInt(v.String(), 10, 64); err != nil {
				return nil, badRequest("Field %q must be a string or an integer", name)
			}
			fields[name] = v.String()
		default:
			return nil, badRequest("Field %q must be a string or an integer", name)
		}
	}
	return fields, nil
}

func readMultipartFields(r *http.Request) (credentialFields, error) {
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, badRequest("Malformed multipart body")
	}
	fields := credentialFields{}
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			return fields, nil
		}
		if err != nil {
			var maxErr *http.MaxBytesError
			if errors.As(err, &maxErr) {
				return nil, err
			}
			return nil, badRequest("Malformed multipart body")
		}
		name := part.FormName()
		if !knownFields[name] {
			part.Close()
			continue
		}
		// Parts are read into memory only: the body is already limited, and
		// a key must never touch a temporary file.
		value, err := io.ReadAll(part)
		part.Close()
		if err != nil {
			var maxErr *http.MaxBytesError
			if errors.As(err, &maxErr) {
				return nil, err
			}
			return nil, badRequest("Malformed multipart body")
		}
		fields[name] = strings.TrimSpace(string(value))
	}
}

// target validates the fields and builds the SSH target.
func (f credentialFields) target() (sshbridge.Target, error) {
	t := sshbridge.Target{Host: f["hostname"], User: f["username"], Password: f["password"], Port: 22}
	switch {
	case t.Host == "":
		return t, badRequest("Missing field: hostname")
	case t.User == "":
		return t, badRequest("Missing field: username")
	case !validHost(t.Host):
		return t, badRequest("Invalid hostname")
	case !printable(t.User) || len(t.User) > 256:
		return t, badRequest("Invalid username")
	}
	if p, ok := f["port"]; ok && p != "" {
		port, err := strconv.Atoi(p)
		if err != nil || port < 1 || port > 65535 {
			return t, badRequest("Invalid port: must be an integer between 1 and 65535")
		}
		t.Port = port
	}
	if pin := f["host_key"]; pin != "" {
		parsed, err := sshbridge.ParseHostKeyPin(pin)
		if err != nil {
			return t, badRequest("Invalid host_key: %s", strings.TrimPrefix(err.Error(), sshbridge.ErrBadPin.Error()+": "))
		}
		t.HostKey = parsed.String()
	}
	key := f["ssh_key"]
	switch {
	case t.Password != "" && key != "":
		return t, badRequest("Provide either a password or an ssh_key, not both")
	case t.Password == "" && key == "":
		return t, badRequest("Missing credentials: provide a password or an ssh_key")
	case key != "":
		t.PrivateKey = []byte(key + "\n") // trimming took the PEM's final newline
		t.Passphrase = f["passphrase"]
		if _, err := sshbridge.ParsePrivateKey(t.PrivateKey, t.Passphrase); err != nil {
			return t, badRequest("%s", keyProblem(err))
		}
	case f["passphrase"] != "":
		return t, badRequest("A passphrase is only used with an ssh_key")
	}
	return t, nil
}

// keyProblem says what is wrong with an uploaded key.
func keyProblem(err error) string {
	switch {
	case errors.Is(err, sshbridge.ErrKeyEncrypted):
		return "ssh_key is encrypted: provide its passphrase"
	case errors.Is(err, sshbridge.ErrWrongPassphrase):
		return "The passphrase does not decrypt ssh_key"
	case errors.Is(err, sshbridge.ErrKeyNotEncrypted):
		return "ssh_key is not encrypted, but a passphrase was given"
	}
	return "ssh_key is not a valid private key (RSA, ECDSA or Ed25519, in PEM or OpenSSH format)"
}

// validHost accepts DNS names and IPv4/IPv6 literals (IPv6 optionally in
// brackets, with a zone).
func validHost(h string) bool {
	if len(h) > 255 {
		return false
	}
	for _, r := range h {
		if !(r < unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune(".-_:%[]", r))) {
			return false
		}
	}
	return true
}

func printable(s string) bool {
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}
