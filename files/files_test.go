package files_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alfresco-ssh/alfresco-ssh/files"
)

type listing struct {
	Success   bool          `json:"success"`
	Path      string        `json:"path"`
	Entries   []files.Entry `json:"entries"`
	Truncated bool          `json:"truncated"`
}

// rootOwned makes a file (data non-nil) or directory in g.dir that only
// root may use.
func (g *gateway) rootOwned(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(g.dir, name)
	var err error
	if data != nil {
		err = os.WriteFile(p, data, 0o600)
	} else {
		err = os.Mkdir(p, 0o700)
	}
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestList(t *testing.T) {
	g := newGateway(t, files.Config{})
	_, token, _ := g.terminal(t, "t1")
	mtime := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	b := g.writeFile(t, "b.txt", []byte("hello"))
	if err := os.Chtimes(b, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	g.mkdir(t, "a-dir")
	for name, target := range map[string]string{"link": "b.txt", "dirlink": "a-dir", "broken": "nowhere"} {
		if err := os.Symlink(target, filepath.Join(g.dir, name)); err != nil {
			t.Fatal(err)
		}
		g.sshd.Chown(t, filepath.Join(g.dir, name))
	}
	locked := g.rootOwned(t, "locked", nil)
	want := []files.Entry{
		{Name: "a-dir", Type: "dir", Size: 4096, Mode: "drwxr-xr-x"},
		{Name: "b.txt", Type: "file", Size: 5, Mode: "-rw-r--r--", MTime: mtime.Unix()},
		{Name: "broken", Type: "link", Size: 7, Mode: "lrwxrwxrwx"},
		{Name: "dirlink", Type: "link", Size: 5, Mode: "lrwxrwxrwx", Target: "dir"},
		{Name: "link", Type: "link", Size: 5, Mode: "lrwxrwxrwx", Target: "file"},
		{Name: "locked", Type: "dir", Size: 4096, Mode: "drwx------"},
	}
	check := func(t *testing.T, l listing) {
		t.Helper()
		if !l.Success || l.Path != g.dir || l.Truncated {
			t.Errorf("listing: got success %v, path %q, truncated %v; want true, %q, false", l.Success, l.Path, l.Truncated, g.dir)
		}
		if len(l.Entries) != len(want) {
			t.Fatalf("entries: got %+v, want %+v", l.Entries, want)
		}
		for i, e := range l.Entries {
			w := want[i]
			if w.MTime == 0 { // only b.txt's is set by the test
				w.MTime = e.MTime
			}
			if e != w {
				t.Errorf("entry %d: got %+v, want %+v", i, e, w)
			}
		}
	}
	for _, tt := range []struct{ name, path string }{
		{"absolute", g.dir},
		{"relative to home", filepath.Base(g.dir)},
		{"up from a subdirectory", filepath.Base(g.dir) + "/a-dir/.."},
	} {
		t.Run(tt.name, func(t *testing.T) {
			check(t, decode[listing](t, g.request(t, "GET", "list", token, tt.path, nil, nil), http.StatusOK))
		})
	}
	t.Run("home", func(t *testing.T) {
		l := decode[listing](t, g.request(t, "GET", "list", token, "", nil, nil), http.StatusOK)
		if l.Path != g.home {
			t.Errorf("path: got %q, want the home directory %q", l.Path, g.home)
		}
		found := false
		for _, e := range l.Entries {
			found = found || e.Name == filepath.Base(g.dir) && e.Type == "dir"
		}
		if !found {
			t.Errorf("entries of home: got %+v, want one for directory %s", l.Entries, filepath.Base(g.dir))
		}
	})
	t.Run("truncated", func(t *testing.T) {
		big := g.mkdir(t, "big")
		for i := range 10001 {
			if err := os.WriteFile(fmt.Sprintf("%s/%05d", big, i), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		l := decode[listing](t, g.request(t, "GET", "list", token, big, nil, nil), http.StatusOK)
		if !l.Truncated || len(l.Entries) != 10000 || l.Entries[9999].Name != "09999" {
			t.Errorf("listing of 10,001 files: got truncated %v and %d entries, want true and the first 10,000", l.Truncated, len(l.Entries))
		}
		os.RemoveAll(big)
	})
	for _, tt := range []struct {
		name, path string
		status     int
		msg        string
	}{
		{"missing", g.dir + "/missing", http.StatusNotFound, "No such file or directory: " + g.dir + "/missing"},
		{"permission denied", locked, http.StatusForbidden, "Permission denied: " + locked},
		{"a file", b, http.StatusBadRequest, "Not a directory: " + b},
		{"nul byte", "a\x00b", http.StatusBadRequest, "Invalid path"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			checkError(t, g.request(t, "GET", "list", token, tt.path, nil, nil), tt.status, tt.msg)
		})
	}
}

// attachmentName returns the file name a browser takes from a
// Content-Disposition: filename*, else filename.
func attachmentName(t *testing.T, cd string) string {
	t.Helper()
	kind, params, err := mime.ParseMediaType(cd)
	if err != nil || kind != "attachment" {
		t.Fatalf("Content-Disposition %q: got %q, %v; want attachment", cd, kind, err)
	}
	return params["filename"] // mime decodes filename* into filename
}

func TestDownload(t *testing.T) {
	g := newGateway(t, files.Config{})
	term, token, _ := g.terminal(t, "t1")
	data := bytes.Repeat([]byte("0123456789"), 100)
	g.mkdir(t, "dir")
	secret := g.rootOwned(t, "secret", []byte("no"))
	for _, name := range []string{"plain.txt", "with space.txt", `quo"te's.txt`, "naïve € 日本.txt", `back\slash;x=1.txt`} {
		t.Run(name, func(t *testing.T) {
			g.writeFile(t, name, data)
			resp := g.request(t, "GET", "download", token, filepath.Join(g.dir, name), nil, nil)
			body, err := io.ReadAll(resp.Body)
			if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(body, data) {
				t.Fatalf("download: got %d, %d bytes, %v; want 200 and the %d bytes", resp.StatusCode, len(body), err, len(data))
			}
			if got, want := resp.Header.Get("Content-Length"), fmt.Sprint(len(data)); got != want {
				t.Errorf("Content-Length: got %q, want %q", got, want)
			}
			cd := resp.Header.Get("Content-Disposition")
			if got := attachmentName(t, cd); got != name {
				t.Errorf("file name of %q: got %q, want %q", cd, got, name)
			}
			if strings.ContainsFunc(cd, func(r rune) bool { return r > 0x7e || r < 0x20 }) {
				t.Errorf("Content-Disposition %q: want printable ASCII only", cd)
			}
		})
	}
	t.Run("range", func(t *testing.T) {
		resp := g.request(t, "GET", "download", token, filepath.Join(g.dir, "plain.txt"), nil,
			http.Header{"Range": {"bytes=10-19"}})
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusPartialContent || string(body) != "0123456789" {
			t.Errorf("range: got %d %q, want 206 %q", resp.StatusCode, body, "0123456789")
		}
		if got, want := resp.Header.Get("Content-Range"), "bytes 10-19/1000"; got != want {
			t.Errorf("Content-Range: got %q, want %q", got, want)
		}
	})
	t.Run("several ranges get the whole file", func(t *testing.T) {
		resp := g.request(t, "GET", "download", token, filepath.Join(g.dir, "plain.txt"), nil,
			http.Header{"Range": {"bytes=0-1,5-6"}})
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || !bytes.Equal(body, data) {
			t.Errorf("two ranges: got %d and %d bytes, want 200 and the whole file", resp.StatusCode, len(body))
		}
	})
	t.Run("unsatisfiable range", func(t *testing.T) {
		resp := g.request(t, "GET", "download", token, filepath.Join(g.dir, "plain.txt"), nil,
			http.Header{"Range": {"bytes=5000-"}})
		if resp.StatusCode != http.StatusRequestedRangeNotSatisfiable {
			t.Errorf("range past the end: got %d, want 416", resp.StatusCode)
		}
	})
	for _, tt := range []struct {
		name, path string
		status     int
		msg        string
	}{
		{"missing", g.dir + "/missing", http.StatusNotFound, "No such file or directory: " + g.dir + "/missing"},
		{"permission denied", secret, http.StatusForbidden, "Permission denied: " + secret},
		{"a directory", g.dir + "/dir", http.StatusBadRequest, "Is a directory: " + g.dir + "/dir"},
		{"a device", "/dev/zero", http.StatusBadRequest, "Not a regular file: /dev/zero"},
		{"no path", "", http.StatusBadRequest, "Missing path"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			checkError(t, g.request(t, "GET", "download", token, tt.path, nil, nil), tt.status, tt.msg)
		})
	}
	if term.touches.Load() == 0 {
		t.Errorf("downloads touched the terminal %d times, want them counted as activity", term.touches.Load())
	}
	var ok, failed int
	for _, tr := range g.transfers() {
		switch {
		case tr.Direction != "download" || tr.Session != "t1":
			t.Errorf("audited %+v, want downloads of t1", tr)
		case tr.Result == "ok":
			ok++
		default:
			failed++
		}
	}
	if ok == 0 || failed == 0 {
		t.Errorf("audit: %d ok and %d failed downloads, want some of each", ok, failed)
	}
	if logs := g.logs.String(); !strings.Contains(logs, "file transfer") || strings.Contains(logs, token) {
		t.Errorf("logs: want file transfer lines without the token; got:\n%s", logs)
	}
}

// TestDownloadResume cuts a download in the middle and finishes it with a
// Range request, If-Range guarding against a changed file.
func TestDownloadResume(t *testing.T) {
	g := newGateway(t, files.Config{})
	_, token, _ := g.terminal(t, "t1")
	const size = 8 << 20
	p := g.writeContent(t, "big.bin", size, 1)
	want := fileDigest(t, p)

	resp := g.request(t, "GET", "download", token, p, nil, nil)
	lastModified := resp.Header.Get("Last-Modified")
	var got bytes.Buffer
	if _, err := io.CopyN(&got, resp.Body, size/3); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close() // the cut

	rest := g.request(t, "GET", "download", token, p, nil, http.Header{
		"Range":    {fmt.Sprintf("bytes=%d-", got.Len())},
		"If-Range": {lastModified},
	})
	if rest.StatusCode != http.StatusPartialContent {
		t.Fatalf("resume: got %d, want 206", rest.StatusCode)
	}
	if _, err := io.Copy(&got, rest.Body); err != nil {
		t.Fatal(err)
	}
	if d := digest(t, &got); d != want {
		t.Errorf("resumed download: got sha256 %s, want %s", d, want)
	}

	stale := g.request(t, "GET", "download", token, p, nil, http.Header{
		"Range":    {"bytes=10-"},
		"If-Range": {"Mon, 02 Jan 2006 15:04:05 GMT"},
	})
	if stale.StatusCode != http.StatusOK {
		t.Errorf("resume against another version: got %d, want 200 (the whole file)", stale.StatusCode)
	}
}

// upload is one file of a multipart body.
type upload struct {
	name string
	body io.Reader
}

// multipartBody streams the files as a multipart body of "file" parts
// (and one other field, which is ignored).
func multipartBody(files ...upload) (io.Reader, string) {
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		mw.WriteField("note", "ignored")
		for _, f := range files {
			part, err := mw.CreateFormFile("file", f.name)
			if err == nil {
				_, err = io.Copy(part, f.body)
			}
			if err != nil {
				pw.CloseWithError(err)
				return
			}
		}
		pw.CloseWithError(mw.Close())
	}()
	return pr, mw.FormDataContentType()
}

type uploadAnswer struct {
	Success bool             `json:"success"`
	Error   string           `json:"error"`
	Path    string           `json:"path"`
	Files   []files.Uploaded `json:"files"`
}

func (g *gateway) upload(t *testing.T, token, dir string, fs ...upload) *http.Response {
	t.Helper()
	body, ct := multipartBody(fs...)
	return g.request(t, "POST", "upload", token, dir, body, http.Header{"Content-Type": {ct}})
}

// leftovers lists the temporary files of uploads left in dir.
func leftovers(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, ".upload-*"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestUpload(t *testing.T) {
	g := newGateway(t, files.Config{MaxUpload: 1 << 20})
	term, token, _ := g.terminal(t, "t1")
	t.Run("two files", func(t *testing.T) {
		a, b := bytes.Repeat([]byte("a"), 100_000), []byte("naïve")
		resp := g.upload(t, token, filepath.Base(g.dir), upload{"a b.txt", bytes.NewReader(a)}, upload{"ü'\"x.txt", bytes.NewReader(b)})
		ans := decode[uploadAnswer](t, resp, http.StatusOK)
		want := []files.Uploaded{{Name: "a b.txt", Size: int64(len(a))}, {Name: "ü'\"x.txt", Size: int64(len(b))}}
		if !ans.Success || ans.Path != g.dir || fmt.Sprint(ans.Files) != fmt.Sprint(want) {
			t.Errorf("answer: got %+v, want success, path %q, files %+v", ans, g.dir, want)
		}
		for name, data := range map[string][]byte{"a b.txt": a, "ü'\"x.txt": b} {
			if got, err := os.ReadFile(filepath.Join(g.dir, name)); err != nil || !bytes.Equal(got, data) {
				t.Errorf("remote %s: got %d bytes, %v; want the %d uploaded", name, len(got), err, len(data))
			}
		}
	})
	t.Run("replace keeps the mode", func(t *testing.T) {
		p := g.writeFile(t, "run.sh", []byte("old"))
		if err := os.Chmod(p, 0o751); err != nil {
			t.Fatal(err)
		}
		decode[uploadAnswer](t, g.upload(t, token, g.dir, upload{"run.sh", strings.NewReader("new")}), http.StatusOK)
		fi, err := os.Stat(p)
		if got, _ := os.ReadFile(p); err != nil || string(got) != "new" || fi.Mode().Perm() != 0o751 {
			t.Errorf("replaced file: got %q, mode %v, %v; want \"new\", mode -rwxr-x--x", got, fi.Mode(), err)
		}
	})
	t.Run("logged and audited, never the contents", func(t *testing.T) {
		const contents = "contents-never-logged-7f3a"
		decode[uploadAnswer](t, g.upload(t, token, g.dir, upload{"logged file.txt", strings.NewReader(contents)}), http.StatusOK)
		target := path.Join(g.dir, "logged file.txt")
		line := fmt.Sprintf(`msg="file transfer" session=t1 direction=upload path=%q bytes=%d result=ok duration=`, target, len(contents))
		if logs := g.logs.String(); !strings.Contains(logs, line) || strings.Contains(logs, contents) {
			t.Errorf("logs: want a line with %s and never the contents; got:\n%s", line, logs)
		}
		trs := g.transfers()
		if tr := trs[len(trs)-1]; tr.Session != "t1" || tr.Direction != "upload" || tr.Path != target ||
			tr.Bytes != int64(len(contents)) || tr.Result != "ok" || tr.Started.IsZero() || tr.Duration <= 0 {
			t.Errorf("audited %+v, want t1's upload of %s, %d bytes, ok, with its start and duration", tr, target, len(contents))
		}
	})
	t.Run("empty file", func(t *testing.T) {
		decode[uploadAnswer](t, g.upload(t, token, g.dir, upload{"empty", strings.NewReader("")}), http.StatusOK)
		if fi, err := os.Stat(filepath.Join(g.dir, "empty")); err != nil || fi.Size() != 0 {
			t.Errorf("empty upload: got %v, %v; want an empty file", fi, err)
		}
	})

	locked := g.rootOwned(t, "locked", nil)
	if err := os.Chmod(locked, 0o755); err != nil {
		t.Fatal(err)
	}
	g.mkdir(t, "sub")
	if err := os.Mkdir(filepath.Join(g.dir, "sub", "taken"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, dir string
		files     []upload
		status    int
		msg       string
	}{
		{"permission denied", locked, []upload{{"x", strings.NewReader("x")}}, http.StatusForbidden, "Permission denied: " + locked + "/x"},
		{"missing directory", g.dir + "/nope", []upload{{"x", strings.NewReader("x")}}, http.StatusNotFound, "No such file or directory"},
		{"into a file", g.dir + "/run.sh", []upload{{"x", strings.NewReader("x")}}, http.StatusBadRequest, "Not a directory: " + g.dir + "/run.sh"},
		{"over a directory", g.dir + "/sub", []upload{{"taken", strings.NewReader("x")}}, http.StatusConflict, "A directory of that name exists"},
		{"dot dot", g.dir, []upload{{"..", strings.NewReader("x")}}, http.StatusBadRequest, "Invalid file name"},
		{"no file", g.dir, nil, http.StatusBadRequest, "No file in the upload"},
		{"too large", g.dir, []upload{{"big", newContent(2<<20, 2)}}, http.StatusRequestEntityTooLarge, "The file is larger than the gateway allows (1048576 bytes)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			checkError(t, g.upload(t, token, tt.dir, tt.files...), tt.status, tt.msg)
			if l := leftovers(t, g.dir); len(l) > 0 {
				t.Errorf("temporary files left: %v", l)
			}
		})
	}
	t.Run("the limit is per file", func(t *testing.T) {
		ans := decode[uploadAnswer](t, g.upload(t, token, g.dir, upload{"part1", newContent(700<<10, 3)}, upload{"part2", newContent(700<<10, 4)}), http.StatusOK)
		if len(ans.Files) != 2 {
			t.Errorf("two files of 700 KiB under a 1 MiB limit: got %+v, want both stored", ans)
		}
	})
	t.Run("not multipart", func(t *testing.T) {
		resp := g.request(t, "POST", "upload", token, g.dir, strings.NewReader("{}"), http.Header{"Content-Type": {"application/json"}})
		checkError(t, resp, http.StatusUnsupportedMediaType, "multipart/form-data")
	})
	if term.touches.Load() == 0 {
		t.Errorf("uploads touched the terminal %d times, want them counted as activity", term.touches.Load())
	}
}

// TestUploadDiskFull fills a small file system: 507 with a readable
// message, and no temporary file left.
func TestUploadDiskFull(t *testing.T) {
	g := newGateway(t, files.Config{})
	_, token, _ := g.terminal(t, "t1")
	full := g.mkdir(t, "full")
	if out, err := run("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=1m,uid=%d,gid=%d", g.uid, g.gid), "tmpfs", full); err != nil {
		skipOrFatal(t, fmt.Sprintf("mount a tmpfs: %v: %s", err, out))
	}
	t.Cleanup(func() { run("umount", full) })
	checkError(t, g.upload(t, token, full, upload{"big", newContent(2<<20, 3)}), http.StatusInsufficientStorage,
		"No space left on the remote disk, or the quota is exceeded: "+full+"/big")
	if l := leftovers(t, full); len(l) > 0 {
		t.Errorf("temporary files left: %v", l)
	}
}

// TestTokens checks that a token opens its own terminal only, and nothing
// once the terminal has ended.
func TestTokens(t *testing.T) {
	g := newGateway(t, files.Config{})
	one, token1, end1 := g.terminal(t, "one")
	two, token2, _ := g.terminal(t, "two")
	p := g.writeFile(t, "f", []byte("x"))
	for _, tt := range []struct{ name, header string }{
		{"missing", ""},
		{"forged", "Bearer " + strings.Repeat("A", len(token1))},
		{"not bearer", "Basic " + token1},
		{"truncated", "Bearer " + token1[:20]},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.header != "" {
				h.Set("Authorization", tt.header)
			}
			resp := g.request(t, "GET", "list", "", g.dir, nil, h)
			if got := resp.Header.Get("WWW-Authenticate"); got == "" {
				t.Errorf("WWW-Authenticate: got none, want a Bearer challenge")
			}
			checkError(t, resp, http.StatusUnauthorized, "Missing or invalid files token")
		})
	}
	g.request(t, "GET", "download", token2, p, nil, nil).Body.Close()
	if one.touches.Load() != 0 || two.touches.Load() == 0 {
		t.Errorf("touches after a download with two's token: one %d, two %d; want 0 and some", one.touches.Load(), two.touches.Load())
	}
	end1()
	checkError(t, g.request(t, "GET", "list", token1, g.dir, nil, nil), http.StatusUnauthorized, "Missing or invalid files token")
	decode[listing](t, g.request(t, "GET", "list", token2, g.dir, nil, nil), http.StatusOK)
}

// TestTransferLimit holds four downloads open and checks that a fifth is
// refused until one ends, while another terminal is not limited.
func TestTransferLimit(t *testing.T) {
	g := newGateway(t, files.Config{})
	_, token, _ := g.terminal(t, "t1")
	_, other, _ := g.terminal(t, "t2")
	// Larger than the socket buffers, so that an unread download holds
	// its handler.
	p := g.writeContent(t, "big", 32<<20, 4)
	var held []*http.Response
	for range 4 {
		held = append(held, g.request(t, "GET", "download", token, p, nil, nil))
	}
	checkError(t, g.request(t, "GET", "download", token, p, nil, nil), http.StatusTooManyRequests, "Too many file transfers")
	decode[listing](t, g.request(t, "GET", "list", token, g.dir, nil, nil), http.StatusOK) // listings are not transfers
	if resp := g.request(t, "GET", "download", other, p, nil, http.Header{"Range": {"bytes=0-0"}}); resp.StatusCode != http.StatusPartialContent {
		t.Errorf("download of another terminal: got %d, want 206", resp.StatusCode)
	}
	if tr := g.nextAudit(t); tr.Session != "t2" {
		t.Fatalf("audited %+v, want t2's download", tr)
	}
	held[0].Body.Close()
	if tr := g.nextAudit(t); tr.Session != "t1" || tr.Result != "interrupted by the client" { // recorded once its slot is free
		t.Errorf("audited %+v, want t1's download interrupted by the client", tr)
	}
	if resp := g.request(t, "GET", "download", token, p, nil, http.Header{"Range": {"bytes=0-0"}}); resp.StatusCode != http.StatusPartialContent {
		t.Errorf("download after one of four ended: got %d, want 206", resp.StatusCode)
	}
}

// TestLargeTransfers uploads 200 MB through the endpoint and downloads it
// again, comparing SHA-256 digests.
func TestLargeTransfers(t *testing.T) {
	g := newGateway(t, files.Config{})
	_, token, _ := g.terminal(t, "t1")
	const size = 200 << 20
	h := sha256.New()
	src := io.TeeReader(newContent(size, 5), h)
	ans := decode[uploadAnswer](t, g.upload(t, token, g.dir, upload{"large.bin", src}), http.StatusOK)
	want := hex.EncodeToString(h.Sum(nil))
	if len(ans.Files) != 1 || ans.Files[0].Size != size {
		t.Fatalf("upload answer: got %+v, want one file of %d bytes", ans, size)
	}
	if got := fileDigest(t, path.Join(g.dir, "large.bin")); got != want {
		t.Fatalf("remote file: got sha256 %s, want %s", got, want)
	}
	resp := g.request(t, "GET", "download", token, path.Join(g.dir, "large.bin"), nil, nil)
	if resp.StatusCode != http.StatusOK || resp.ContentLength != size {
		t.Fatalf("download: got %d with Content-Length %d, want 200 and %d", resp.StatusCode, resp.ContentLength, size)
	}
	if got := digest(t, resp.Body); got != want {
		t.Errorf("download: got sha256 %s, want %s", got, want)
	}
}

// TestSessionEndStopsTransfers ends a terminal during a download and an
// upload: both stop and are audited as failed.
func TestSessionEndStopsTransfers(t *testing.T) {
	g := newGateway(t, files.Config{})
	_, token, end := g.terminal(t, "t1")
	p := g.writeContent(t, "big", 32<<20, 6)
	down := g.request(t, "GET", "download", token, p, nil, nil)
	if down.StatusCode != http.StatusOK {
		t.Fatalf("download: got %d, want 200", down.StatusCode)
	}
	// An upload whose body comes slowly, so that it is running at the end.
	pr, pw := io.Pipe()
	body, ct := multipartBody(upload{"slow.bin", pr})
	answer := make(chan *http.Response, 1)
	go func() { // ends when the gateway answers; the cleanup closes pw
		req, _ := http.NewRequest("POST", g.url+"/files/upload?path="+url.QueryEscape(g.dir), body)
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", ct)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			resp = &http.Response{StatusCode: -1, Body: http.NoBody}
		}
		answer <- resp
	}()
	t.Cleanup(func() { pw.Close() })
	if _, err := pw.Write(make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(waitTimeout); len(leftovers(t, g.dir)) == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) { // the temporary file exists once the upload runs
			t.Fatal("the upload did not start")
		}
	}
	end()
	go io.Copy(pw, newContent(1<<30, 7)) // the client goes on sending until the answer; ends when the cleanup closes pw

	if n, err := io.Copy(io.Discard, down.Body); err == nil && n == 32<<20 {
		t.Errorf("download after the terminal ended: got all %d bytes, want it cut", n)
	}
	select {
	case resp := <-answer:
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadGateway {
			t.Errorf("upload after the terminal ended: got %d, want 502", resp.StatusCode)
		}
	case <-time.After(waitTimeout):
		t.Fatal("the upload did not end with the terminal")
	}
	for range 2 {
		if tr := g.nextAudit(t); tr.Result == "ok" {
			t.Errorf("audited %+v, want a failed %s", tr, tr.Direction)
		}
	}
	// The upload's temporary file stays: the connection that could remove
	// it is gone (PROTOCOL.md says so; the panel hides such files).
}
