package server

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

// Fuzz targets for everything the gateway parses from the network. The
// test command runs each briefly; seed corpora are in testdata/fuzz. Longer
// runs: go test -run XXX -fuzz FuzzName -fuzztime 10m ./server/

func checkTarget(t *testing.T, r *http.Request) {
	target, err := parseCredentialRequest(r)
	if err != nil {
		if _, ok := err.(*requestError); !ok {
			t.Fatalf("got %T %v, want a *requestError", err, err)
		}
		return
	}
	if target.Host == "" || target.User == "" || target.Port < 1 || target.Port > 65535 {
		t.Fatalf("accepted an invalid target %+v", target)
	}
	if (target.Password == "") == (len(target.PrivateKey) == 0) {
		t.Fatal("accepted a target without exactly one of password and key")
	}
}

func FuzzParseCredentialJSON(f *testing.F) {
	f.Add([]byte(`{"hostname":"h","username":"u","password":"p","port":22}`))
	f.Add([]byte(`{"hostname":"h","username":"u","password":"p","port":"22"}`))
	f.Add([]byte(`{"hostname":" h ","username":1,"password":"p","port":22.5}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		r := httptest.NewRequest(http.MethodPost, "/create-credentials", bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		checkTarget(t, r)
	})
}

func FuzzParseCredentialMultipart(f *testing.F) {
	const boundary = "fuzzboundary"
	f.Add([]byte("--fuzzboundary\r\nContent-Disposition: form-data; name=\"hostname\"\r\n\r\nh\r\n" +
		"--fuzzboundary\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\nu\r\n" +
		"--fuzzboundary\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\np\r\n--fuzzboundary--\r\n"))
	f.Add([]byte("--fuzzboundary\r\nContent-Disposition: form-data; name=\"ssh_key\"; filename=\"k\"\r\n\r\n-----BEGIN OPENSSH PRIVATE KEY-----\r\n--fuzzboundary--\r\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		r := httptest.NewRequest(http.MethodPost, "/create-credentials", bytes.NewReader(body))
		r.Header.Set("Content-Type", "multipart/form-data; boundary="+boundary)
		checkTarget(t, r)
	})
}

// FuzzDecodeEvents feeds every event decoder the JSON a client may send.
func FuzzDecodeEvents(f *testing.F) {
	f.Add([]byte(`{"credentials_uuid":"0c2a6f0e-6f77-4b0c-9d0b-1f3c2a9f8e11"}`))
	f.Add([]byte(`{"create_session_id":"x"}`))
	f.Add([]byte(`{"input":"ls\r"}`))
	f.Add([]byte(`{"cols":80,"rows":24}`))
	f.Add([]byte(`{"cols":"80","rows":1e300}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var v any
		if json.Unmarshal(data, &v) != nil {
			return
		}
		args := []any{v}
		if id, err := decodeStart(args); err == nil && (id == "" || len(id) > 64) {
			t.Fatalf("accepted id %q", id)
		}
		decodeInput(args)
		if size, err := decodeResize(args); err == nil &&
			(size.Cols < 1 || size.Cols > maxCols || size.Rows < 1 || size.Rows > maxRows) {
			t.Fatalf("accepted size %+v", size)
		}
	})
}
