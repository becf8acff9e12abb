package terminal

import (
	"errors"

	"github.com/alfresco-ssh/alfresco-ssh/credstore"
	"github.com/alfresco-ssh/alfresco-ssh/policy"
	"github.com/alfresco-ssh/alfresco-ssh/sshbridge"
)

// Reasons a terminal ends, besides the shell ending (nil) and SSH
// failures (sshbridge's errors).
var (
	// ErrClientGone: the client disconnected; it gets no closing message.
	ErrClientGone = errors.New("client disconnected")
	// ErrInactive: no input or output for the idle timeout, or the page's
	// own inactivity timer (its timeout event).
	ErrInactive = errors.New("closed for inactivity")
	// ErrShutdown: the gateway is shutting down or draining.
	ErrShutdown = errors.New("server shutting down")
	// ErrNoCredentials: start-session named credentials that are unknown,
	// expired or already used.
	ErrNoCredentials = errors.New("credentials unknown, expired or already used")
	// ErrLifetime: the maximum session duration was reached.
	ErrLifetime = errors.New("maximum session duration reached")
	// ErrKilled: an administrator ended the terminal (Manager.Kill).
	ErrKilled = errors.New("ended by an administrator")
	// ErrNotReading: the remote did not read its input while more than
	// InputBuffer bytes of it waited.
	ErrNotReading = errors.New("the remote is not reading input")
	// ErrStartTimeout: no start-session within Config.StartTimeout of the
	// client's connection.
	ErrStartTimeout = errors.New("session not started in time")
	// ErrConnectionLost: the shell's output ended without an exit status:
	// the SSH server closed the connection, or it broke.
	ErrConnectionLost = errors.New("the SSH server closed the connection without an exit status")
)

// Reason classifies how a terminal failed to start or ended, for metrics
// and audit. The set is fixed: it never holds a user-controlled value.
type Reason string

// Failures to start (Observer.Failed).
const (
	ReasonInvalidCredentials Reason = "invalid_credentials" // unknown, expired or used credentials
	ReasonDenied             Reason = "denied"              // target policy, session limits, login back-off, at capacity
	ReasonAuthFailed         Reason = "auth_failed"
	ReasonHostKeyRejected    Reason = "host_key_rejected"
	ReasonConnectFailed      Reason = "connect_failed" // refused, unreachable, not found, timed out, handshake
	ReasonError              Reason = "error"          // anything else
)

// Endings (Observer.Ended), and for Failed when the client left or the
// gateway stopped during the dial.
const (
	ReasonExit       Reason = "exit"        // the shell ended
	ReasonClientGone Reason = "client_gone" // the browser left
	ReasonIdle       Reason = "idle"        // ErrInactive
	ReasonLifetime   Reason = "lifetime"
	ReasonShutdown   Reason = "shutdown"
	ReasonKilled     Reason = "killed"
	ReasonLost       Reason = "connection_lost" // the SSH connection broke
)

// classify returns the Reason of err, the way a terminal ended or failed.
func classify(err error) Reason {
	var denied *policy.TargetDeniedError
	var blocked *policy.LoginRefusedError
	switch {
	case err == nil:
		return ReasonExit
	case errors.Is(err, ErrClientGone), errors.Is(err, ErrResumeExpired):
		return ReasonClientGone
	case errors.Is(err, ErrInactive):
		return ReasonIdle
	case errors.Is(err, ErrLifetime):
		return ReasonLifetime
	case errors.Is(err, ErrShutdown):
		return ReasonShutdown
	case errors.Is(err, ErrKilled):
		return ReasonKilled
	case errors.Is(err, ErrStartTimeout):
		return ReasonConnectFailed
	case errors.Is(err, ErrNotReading):
		return ReasonLost // the remote stopped answering
	case errors.Is(err, ErrNoCredentials):
		return ReasonInvalidCredentials
	case outOfFiles(err):
		return ReasonDenied // the gateway is at capacity
	case errors.As(err, &denied), errors.As(err, &blocked),
		errors.Is(err, policy.ErrTooManySessions), errors.Is(err, policy.ErrTooManyClientSessions):
		return ReasonDenied
	case errors.Is(err, sshbridge.ErrAuth), errors.Is(err, sshbridge.ErrBadKey), errors.Is(err, sshbridge.ErrKeyEncrypted):
		return ReasonAuthFailed
	case errors.Is(err, sshbridge.ErrHostKey):
		return ReasonHostKeyRejected
	case errors.Is(err, sshbridge.ErrRefused), errors.Is(err, sshbridge.ErrUnreachable),
		errors.Is(err, sshbridge.ErrHostNotFound), errors.Is(err, sshbridge.ErrTimeout),
		errors.Is(err, sshbridge.ErrHandshake), errors.Is(err, sshbridge.ErrSession):
		return ReasonConnectFailed
	}
	return ReasonLost
}

// Text is the user's explanation of why a terminal ended or could not
// start, for the closing message. It never contains internal error text.
func Text(reason error) string {
	var hostKey *sshbridge.HostKeyError
	var denied *policy.TargetDeniedError
	var blocked *policy.LoginRefusedError
	switch {
	case errors.As(reason, &hostKey):
		return "Connection failed: " + hostKey.UserMessage() + "."
	case errors.As(reason, &denied):
		return "Connection refused by the gateway's policy: " + denied.Error() + "."
	case errors.As(reason, &blocked):
		return "Connection refused: " + blocked.Error() + "."
	case errors.Is(reason, policy.ErrTooManySessions):
		return "Connection refused: the gateway has too many sessions, try again later."
	case errors.Is(reason, policy.ErrTooManyClientSessions):
		return "Connection refused: too many sessions from your address."
	case reason == nil:
		return "Connection closed."
	case errors.Is(reason, ErrInactive):
		return "Session closed after a period of inactivity."
	case errors.Is(reason, ErrLifetime):
		return "Session closed: the maximum session duration was reached."
	case errors.Is(reason, ErrShutdown):
		return "The gateway is shutting down. Connection closed."
	case errors.Is(reason, ErrKilled):
		return "Session ended by an administrator."
	case errors.Is(reason, ErrStartTimeout):
		return "Connection closed: the session did not start in time."
	case errors.Is(reason, ErrNotReading):
		return "Session closed: the remote is not reading input."
	case errors.Is(reason, ErrConnectionLost):
		return "Connection lost: the SSH server closed the connection."
	case errors.Is(reason, ErrUnresponsive):
		return "Connection closed: the remote host stopped responding."
	case errors.Is(reason, ErrResumeRefused), errors.Is(reason, ErrResumeExpired):
		return "The session has ended."
	case errors.Is(reason, ErrTakenOver):
		return "The session was resumed in another window."
	case errors.Is(reason, credstore.ErrUnavailable):
		return "Could not start the session: the gateway cannot reach its credential store, try again later."
	case errors.Is(reason, ErrNoCredentials):
		return "Could not start the session: the credentials are unknown, expired or already used."
	case outOfFiles(reason):
		return "Connection failed: the gateway is at capacity, try again later."
	case errors.Is(reason, sshbridge.ErrAuth):
		return "Connection failed: authentication failed."
	case errors.Is(reason, sshbridge.ErrRefused):
		return "Connection failed: connection refused."
	case errors.Is(reason, sshbridge.ErrHostNotFound):
		return "Connection failed: host not found."
	case errors.Is(reason, sshbridge.ErrUnreachable):
		return "Connection failed: host unreachable."
	case errors.Is(reason, sshbridge.ErrTimeout):
		return "Connection failed: timed out."
	case errors.Is(reason, sshbridge.ErrHostKey):
		return "Connection failed: the host key was rejected."
	case errors.Is(reason, sshbridge.ErrBadKey), errors.Is(reason, sshbridge.ErrKeyEncrypted):
		return "Connection failed: the private key could not be used."
	case errors.Is(reason, sshbridge.ErrHandshake):
		return "Connection failed: SSH handshake failed."
	case errors.Is(reason, sshbridge.ErrSession):
		return "Connection failed: the remote host refused to start a shell."
	}
	return "Connection closed: the connection to the remote host was lost."
}
