package files

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pkg/sftp"
)

// maxName bounds an uploaded file's name, in bytes (Linux's NAME_MAX).
const maxName = 255

// Uploaded is one file of an upload's answer.
type Uploaded struct {
	Name string `json:"name"`
	Size int64  `json:"size"`
}

// Upload is POST /files/upload?path=DIR: a multipart/form-data body whose
// parts named "file" are written into the remote directory DIR (the home
// directory when absent) under their file names, in order, replacing files
// of the same name. Each streams into a temporary file in DIR that is
// renamed over the name once complete, so an interrupted upload leaves an
// existing file as it was; a replaced file keeps its permissions. The
// answer is {"success": true, "path": DIR, "files": [{"name", "size"}]};
// on an error, "files" lists the files stored before it.
func (h *Handler) Upload(w http.ResponseWriter, r *http.Request) {
	sess, c, p, ok := h.open(w, r, ".")
	if !ok {
		return
	}
	mr, err := r.MultipartReader()
	if err != nil {
		writeError(w, &Error{http.StatusUnsupportedMediaType, "Expected a multipart/form-data body"})
		return
	}
	if !h.begin(w, sess) {
		return
	}
	defer h.end(sess)
	defer sess.Touch()

	dir, err := c.RealPath(p)
	if err == nil {
		var fi fs.FileInfo
		if fi, err = c.Stat(dir); err == nil && !fi.IsDir() {
			writeError(w, badRequest("Not a directory: "+dir))
			return
		}
	}
	if err != nil {
		writeError(w, remoteError(err, opOther, p))
		return
	}
	stored := []Uploaded{}
	fail := func(e *Error) {
		writeJSON(w, e.Status, map[string]any{"success": false, "error": e.Msg, "path": dir, "files": stored})
	}
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			fail(bodyError(err))
			return
		}
		if part.FormName() != "file" {
			continue
		}
		name := formName(part.FileName())
		if !validName(name) {
			fail(badRequest("Invalid file name: " + strings.ToValidUTF8(name, "\uFFFD")))
			return
		}
		src := io.Reader(part)
		if max := h.cfg.MaxUpload; max > 0 {
			src = &maxReader{r: part, max: max, left: max}
		}
		n, e := h.receive(c, sess, dir, name, src)
		if e != nil {
			fail(e)
			return
		}
		stored = append(stored, Uploaded{Name: name, Size: n})
	}
	if len(stored) == 0 {
		fail(badRequest(`No file in the upload (expected parts named "file")`))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "path": dir, "files": stored})
}

// formEscapes undoes the escaping browsers apply to the file names of
// multipart/form-data (the HTML standard's "%22" for a double quote, "%0D"
// and "%0A" for CR and LF; they leave "%" alone, so a name that really
// holds "%22" cannot be told apart and is taken as a quote).
var formEscapes = strings.NewReplacer("%22", `"`, "%0D", "\r", "%0d", "\r", "%0A", "\n", "%0a", "\n")

// formName is the file name a browser meant by a part's file name.
func formName(name string) string { return formEscapes.Replace(name) }

// validName reports whether name can be a file name in a directory.
func validName(name string) bool {
	return name != "" && name != "." && name != ".." && len(name) <= maxName &&
		utf8.ValidString(name) && !strings.ContainsAny(name, "/\x00")
}

// receive stores one uploaded file as dir/name and records the transfer.
func (h *Handler) receive(c *sftp.Client, sess Session, dir, name string, src io.Reader) (int64, *Error) {
	t := Transfer{Session: sess.ID(), Direction: "upload", Path: path.Join(dir, name), Started: time.Now()}
	n, e := store(c, t.Path, &uploadReader{r: src, touch: sess.Touch})
	t.Bytes, t.Result = n, "ok"
	if e != nil {
		t.Result = e.Msg
	}
	h.record(t)
	return n, e
}

// store writes src into a temporary file beside target, then renames it
// over target. It removes the temporary file on failure.
func store(c *sftp.Client, target string, src *uploadReader) (int64, *Error) {
	var perm fs.FileMode
	fi, err := c.Lstat(target)
	switch {
	case err == nil && fi.IsDir():
		return 0, &Error{http.StatusConflict, "A directory of that name exists: " + target}
	case err == nil && fi.Mode().IsRegular():
		perm = fi.Mode().Perm()
	case err != nil && !errors.Is(err, os.ErrNotExist):
		return 0, remoteError(err, opOther, target)
	}
	tmp := path.Join(path.Dir(target), ".upload-"+randomHex(8)+".part")
	f, err := c.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
	if err != nil {
		return 0, remoteError(err, opOther, target)
	}
	done := false
	defer func() {
		if !done {
			c.Remove(tmp)
		}
	}()
	if perm != 0 {
		f.Chmod(perm) // best effort: the new file is ours, so it works unless the remote refuses modes
	}
	n, err := f.ReadFromWithConcurrency(src, 0)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	switch {
	case src.err != nil:
		return n, bodyError(src.err)
	case err != nil:
		return n, remoteError(err, opWrite, target)
	}
	if err := rename(c, tmp, target); err != nil {
		return n, remoteError(err, opOther, target)
	}
	done = true
	return n, nil
}

// rename moves from over to, replacing it: atomically with OpenSSH's
// posix-rename extension; otherwise (plain SFTP renames refuse an existing
// target) by removing to first.
func rename(c *sftp.Client, from, to string) error {
	if _, ok := c.HasExtension("posix-rename@openssh.com"); ok {
		return c.PosixRename(from, to)
	}
	if err := c.Remove(to); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return c.Rename(from, to)
}

// bodyError is the answer to a request body that could not be read.
func bodyError(err error) *Error {
	var tooLarge *tooLargeError
	if errors.As(err, &tooLarge) {
		return &Error{http.StatusRequestEntityTooLarge, err.Error()}
	}
	return badRequest("The upload was interrupted or is not valid multipart/form-data")
}

// maxReader reads an uploaded file, failing once it is larger than left
// bytes.
type maxReader struct {
	r    io.Reader
	max  int64
	left int64
}

func (m *maxReader) Read(p []byte) (int, error) {
	n, err := m.r.Read(p)
	if m.left -= int64(n); m.left < 0 {
		return n, &tooLargeError{max: m.max}
	}
	return n, err
}

// tooLargeError is an uploaded file over Config.MaxUpload.
type tooLargeError struct{ max int64 }

func (e *tooLargeError) Error() string {
	return fmt.Sprintf("The file is larger than the gateway allows (%d bytes)", e.max)
}

// uploadReader is an uploaded file's body: each read counts as activity,
// and its error tells a failed request from a failed remote.
type uploadReader struct {
	r     io.Reader
	touch func()
	err   error // the first error other than io.EOF
}

func (u *uploadReader) Read(p []byte) (int, error) {
	u.touch()
	n, err := u.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) && u.err == nil {
		u.err = err
	}
	return n, err
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
