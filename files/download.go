package files

import (
	"errors"
	"io"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pkg/sftp"
)

// Download is GET /files/download?path=P: the remote regular file P,
// streamed, with Content-Length, Content-Disposition: attachment, and
// a byte range (Range, If-Range) so that a broken download can resume.
// HEAD answers the headers alone.
func (h *Handler) Download(w http.ResponseWriter, r *http.Request) {
	sess, c, p, ok := h.open(w, r, "")
	if !ok || !h.begin(w, sess) {
		return
	}
	t := Transfer{Session: sess.ID(), Direction: "download", Path: p, Started: time.Now()}
	defer func() { h.record(t) }() // once the slot is free
	defer h.end(sess)
	defer sess.Touch()
	t.Bytes, t.Result = send(w, r, c, p, sess.Touch)
}

// send answers a download of the remote file p and returns the bytes sent
// and the result to record.
func send(w http.ResponseWriter, r *http.Request, c *sftp.Client, p string, touch func()) (int64, string) {
	f, err := c.Open(p)
	if err != nil {
		e := remoteError(err, opOther, p)
		writeError(w, e)
		return 0, e.Msg
	}
	defer f.Close()
	fi, err := f.Stat()
	var e *Error
	switch {
	case err != nil:
		e = remoteError(err, opOther, p)
	case fi.IsDir():
		e = badRequest("Is a directory: " + p)
	case !fi.Mode().IsRegular():
		e = badRequest("Not a regular file: " + p)
	}
	if e != nil {
		writeError(w, e)
		return 0, e.Msg
	}

	body := &remoteReader{f: f, size: fi.Size(), touch: touch}
	defer body.stop() // before f.Close
	cw := &countingWriter{ResponseWriter: w}
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Disposition", attachment(path.Base(p)))
	// ServeContent answers a range, If-Range against Last-Modified, 416
	// and HEAD. Several ranges it would serve from a goroutine that may
	// outlive this handler; RFC 9110 lets a server ignore Range, so they
	// get the whole file.
	if strings.Contains(r.Header.Get("Range"), ",") {
		r.Header.Del("Range")
	}
	http.ServeContent(cw, r, "", fi.ModTime(), body)
	body.stop()

	want, _ := strconv.ParseInt(h.Get("Content-Length"), 10, 64)
	switch {
	case body.err != nil:
		return cw.n, remoteError(body.err, opOther, p).Msg
	case cw.status >= 300:
		return cw.n, http.StatusText(cw.status)
	case r.Method != http.MethodHead && cw.n < want:
		return cw.n, "interrupted by the client"
	}
	return cw.n, "ok"
}

// remoteReader reads a remote file for ServeContent. From where a Read
// starts, a goroutine (the pump) reads the file with the SFTP client's
// WriteTo, which keeps many read requests in flight and hands the data on
// in order, through a pipe: the remote is read while earlier data goes out
// to the browser, and what is held is the client's few in-flight buffers.
// A Seek elsewhere stops the pump; the next Read starts another.
type remoteReader struct {
	f     *sftp.File
	size  int64
	off   int64 // where the next Read reads
	touch func()

	pr   *io.PipeReader // the pump's output; nil while none runs
	done chan struct{}  // closed when the pump has ended
	err  error          // the remote's error, if the pump ended on one; read after done
}

func (r *remoteReader) Read(p []byte) (int, error) {
	r.touch()
	if r.off >= r.size {
		return 0, io.EOF
	}
	if r.pr == nil {
		r.start()
	}
	n, err := r.pr.Read(p)
	r.off += int64(n)
	return n, err
}

// start starts the pump at r.off.
func (r *remoteReader) start() {
	pr, pw := io.Pipe()
	r.pr, r.done = pr, make(chan struct{})
	go func(off int64) { // ends at the end of the file, or when stop closes the pipe
		defer close(r.done)
		_, err := r.f.Seek(off, io.SeekStart)
		if err == nil {
			_, err = r.f.WriteTo(pw)
		}
		if err != nil && !errors.Is(err, io.ErrClosedPipe) {
			r.err = err
		}
		pw.CloseWithError(err) // nil: the reader sees io.EOF
	}(r.off)
}

// stop ends the pump, if one runs, and waits for it.
func (r *remoteReader) stop() {
	if r.pr == nil {
		return
	}
	r.pr.Close()
	<-r.done
	r.pr = nil
}

func (r *remoteReader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekCurrent:
		offset += r.off
	case io.SeekEnd:
		offset += r.size
	}
	if offset < 0 {
		return 0, errors.New("files: seek before the start")
	}
	if offset != r.off {
		r.stop()
		r.off = offset
	}
	return offset, nil
}

// countingWriter counts the body bytes written and notes the status.
type countingWriter struct {
	http.ResponseWriter
	status int
	n      int64
}

func (w *countingWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *countingWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.n += int64(n)
	return n, err
}

// attachment is the Content-Disposition of a download named name (RFC
// 6266): a quoted ASCII filename for every browser, where characters that
// quoting does not carry reliably (non-ASCII, quotes, backslashes, control
// characters) become "_", and when that changed the name, the exact name in
// filename* (RFC 8187, UTF-8 percent-encoded), which browsers prefer.
func attachment(name string) string {
	name = strings.ToValidUTF8(name, "\uFFFD")
	var ascii strings.Builder
	for _, r := range name {
		if r < 0x20 || r >= 0x7f || r == '"' || r == '\\' {
			r = '_'
		}
		ascii.WriteRune(r)
	}
	v := `attachment; filename="` + ascii.String() + `"`
	if ascii.String() != name {
		v += "; filename*=UTF-8''" + percentEncode(name)
	}
	return v
}

// percentEncode encodes s as an RFC 8187 value: attr-chars stay, every
// other byte becomes %XX.
func percentEncode(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < utf8.RuneSelf && isAttrChar(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// isAttrChar reports whether c is an attr-char of RFC 8187.
func isAttrChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$&+-.^_`|~", c) >= 0
}
