package files

import (
	"context"
	"errors"
	"io/fs"
	"net/http"
	"path"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/pkg/sftp"

	"github.com/alfresco-ssh/alfresco-ssh/sshbridge"
)

const (
	// maxPath bounds the path parameter, in bytes (Linux's PATH_MAX).
	maxPath = 4096
	// maxEntries bounds a listing; a larger directory is cut, and the
	// answer says so with "truncated": true (as when listTime runs out).
	maxEntries = 10000
	// linkWorkers is how many symbolic links a listing resolves at once.
	linkWorkers = 8
	// listTime bounds the reading of one directory.
	listTime = 15 * time.Second
)

// Entry is one directory entry of a listing.
type Entry struct {
	Name string `json:"name"`
	// Type is "file", "dir" or "link" (the link itself, not followed);
	// sockets, devices and pipes are "file", with their kind in Mode.
	Type string `json:"type"`
	Size int64  `json:"size"`
	// Mode is as ls -l shows it, e.g. "-rw-r--r--" or "drwxr-xr-x".
	Mode string `json:"mode"`
	// MTime is the modification time in Unix seconds.
	MTime int64 `json:"mtime"`
	// Target is, for a link, the type of what it points to ("file" or
	// "dir"); absent when the link is broken.
	Target string `json:"target,omitempty"`
}

// remotePath reads the path parameter: a remote path, a relative one
// starting at the remote home directory. def stands for an absent one;
// without def the parameter is required.
func remotePath(r *http.Request, def string) (string, *Error) {
	p := r.URL.Query().Get("path")
	if p == "" {
		p = def
	}
	switch {
	case p == "":
		return "", badRequest("Missing path parameter")
	case len(p) > maxPath, strings.IndexByte(p, 0) >= 0, !utf8.ValidString(p):
		return "", badRequest("Invalid path parameter")
	}
	return p, nil
}

// client returns the terminal's SFTP client.
func client(sess Session) (*sftp.Client, *Error) {
	c, err := sess.SFTP()
	if errors.Is(err, sshbridge.ErrNoSFTP) {
		return nil, remoteError(err, opOther, "")
	}
	if err != nil {
		return nil, &Error{http.StatusBadGateway, "Could not open file transfers on the terminal's SSH connection"}
	}
	return c, nil
}

// List is GET /files/list?path=P: the entries of a remote directory
// (the home directory when path is absent), sorted by name, as
// {"success": true, "path": absolute path, "entries": [...]}.
func (h *Handler) List(w http.ResponseWriter, r *http.Request) {
	_, c, p, ok := h.open(w, r, ".")
	if !ok {
		return
	}
	dir, err := c.RealPath(p)
	if err != nil {
		writeError(w, remoteError(err, opOther, p))
		return
	}
	// A huge directory is read for listTime at most; what came by then is
	// listed.
	ctx, cancel := context.WithTimeout(r.Context(), listTime)
	defer cancel()
	infos, err := c.ReadDirContext(ctx, dir)
	timedOut := errors.Is(err, context.DeadlineExceeded) && r.Context().Err() == nil
	if err != nil && !timedOut {
		if fi, serr := c.Stat(dir); serr == nil && !fi.IsDir() {
			writeError(w, badRequest("Not a directory: "+dir))
			return
		}
		writeError(w, remoteError(err, opOther, dir))
		return
	}
	sort.Slice(infos, func(i, j int) bool { return infos[i].Name() < infos[j].Name() })
	truncated := timedOut || len(infos) > maxEntries
	if truncated {
		infos = infos[:maxEntries]
	}
	entries := make([]Entry, len(infos))
	for i, fi := range infos {
		entries[i] = entry(fi)
	}
	resolveLinks(c, dir, entries)
	body := map[string]any{"success": true, "path": dir, "entries": entries}
	if truncated {
		body["truncated"] = true
	}
	writeJSON(w, http.StatusOK, body)
}

func entry(fi fs.FileInfo) Entry {
	e := Entry{
		Name:  strings.ToValidUTF8(fi.Name(), "\uFFFD"),
		Type:  "file",
		Size:  fi.Size(),
		Mode:  modeString(fi.Mode()),
		MTime: fi.ModTime().Unix(),
	}
	switch {
	case fi.IsDir():
		e.Type = "dir"
	case fi.Mode()&fs.ModeSymlink != 0:
		e.Type = "link"
	}
	return e
}

// resolveLinks sets the Target of the links among entries, a few at once.
func resolveLinks(c *sftp.Client, dir string, entries []Entry) {
	n := 0
	for _, e := range entries {
		if e.Type == "link" {
			n++
		}
	}
	links := make(chan *Entry)
	var wg sync.WaitGroup
	for range min(n, linkWorkers) {
		wg.Go(func() {
			for e := range links {
				if fi, err := c.Stat(path.Join(dir, e.Name)); err == nil {
					e.Target = "file"
					if fi.IsDir() {
						e.Target = "dir"
					}
				}
			}
		})
	}
	for i := range entries {
		if entries[i].Type == "link" {
			links <- &entries[i]
		}
	}
	close(links)
	wg.Wait()
}

// modeString renders a mode as ls -l does: the type, then the permissions
// with setuid, setgid and sticky as s/S and t/T.
func modeString(m fs.FileMode) string {
	b := []byte("?rwxrwxrwx")
	switch {
	case m.IsDir():
		b[0] = 'd'
	case m&fs.ModeSymlink != 0:
		b[0] = 'l'
	case m&fs.ModeNamedPipe != 0:
		b[0] = 'p'
	case m&fs.ModeSocket != 0:
		b[0] = 's'
	case m&fs.ModeCharDevice != 0:
		b[0] = 'c'
	case m&fs.ModeDevice != 0:
		b[0] = 'b'
	default:
		b[0] = '-'
	}
	for i := range 9 {
		if m&(1<<(8-i)) == 0 {
			b[i+1] = '-'
		}
	}
	special := func(bit fs.FileMode, at int, set byte) {
		if m&bit == 0 {
			return
		}
		if b[at] == 'x' {
			b[at] = set
		} else {
			b[at] = set - 'a' + 'A'
		}
	}
	special(fs.ModeSetuid, 3, 's')
	special(fs.ModeSetgid, 6, 's')
	special(fs.ModeSticky, 9, 't')
	return string(b)
}
