package files

import (
	"errors"
	"io"
	"net/http"
	"os"

	"github.com/pkg/sftp"

	"github.com/alfresco-ssh/alfresco-ssh/sshbridge"
)

// Error is an answer other than success: the status and the message the
// user reads. It is written as {"success": false, "error": msg}.
type Error struct {
	Status int
	Msg    string
}

func (e *Error) Error() string { return e.Msg }

var (
	errToken = &Error{http.StatusUnauthorized, "Missing or invalid files token"}
	errBusy  = &Error{http.StatusTooManyRequests, "Too many file transfers of this terminal at once; wait for one to finish"}
)

func badRequest(msg string) *Error { return &Error{http.StatusBadRequest, msg} }

// writeError answers with err as JSON.
func writeError(w http.ResponseWriter, err *Error) {
	writeJSON(w, err.Status, map[string]any{"success": false, "error": err.Msg})
}

// During which step an SFTP error came: a failure while writing a file is
// almost always a full disk or an exceeded quota, which OpenSSH's
// sftp-server reports only as a generic failure.
const (
	opOther = iota
	opWrite
)

// remoteError turns an error of the SFTP side into what the user reads,
// naming the path it concerns.
func remoteError(err error, op int, path string) *Error {
	var status *sftp.StatusError
	switch {
	case errors.Is(err, os.ErrNotExist):
		return &Error{http.StatusNotFound, "No such file or directory: " + path}
	case errors.Is(err, os.ErrPermission):
		return &Error{http.StatusForbidden, "Permission denied: " + path}
	case errors.Is(err, sshbridge.ErrNoSFTP):
		return &Error{http.StatusNotImplemented, "The remote host does not offer file transfers (no SFTP subsystem)"}
	case errors.As(err, &status):
		switch status.FxCode() {
		case sftp.ErrSSHFxFailure:
			if op == opWrite {
				return &Error{http.StatusInsufficientStorage, "No space left on the remote disk, or the quota is exceeded: " + path}
			}
			return &Error{http.StatusBadGateway, "The remote host could not do it: " + path}
		case sftp.ErrSSHFxBadMessage:
			return badRequest("The remote host refused the name (too long, or invalid): " + path)
		case sftp.ErrSSHFxOpUnsupported:
			return &Error{http.StatusNotImplemented, "The remote host does not support this operation"}
		case sftp.ErrSSHFxConnectionLost, sftp.ErrSSHFxNoConnection:
			return errLost
		}
	case errors.Is(err, sftp.ErrSSHFxConnectionLost), errors.Is(err, io.EOF),
		errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.ErrClosedPipe):
		return errLost
	}
	return &Error{http.StatusBadGateway, "The file transfer failed on the remote side: " + path}
}

var errLost = &Error{http.StatusBadGateway, "The connection to the remote host was lost"}
