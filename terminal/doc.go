// Package terminal owns the lifecycle of the gateway's terminals: from a
// browser's connection, through start-session (credentials, limits, login
// back-off, SSH dial), the running shell (output pump, input, window size,
// idle and lifetime limits), to the end and the text that tells the user
// why. It knows nothing of Socket.IO or HTTP: package server adapts a
// Socket.IO socket to a Client and its events to a Terminal's methods.
//
// # States
//
// A Terminal moves through these states, in this order, and may skip to
// Ended from any of them:
//
//	Waiting   connected (Manager.Open); no start-session yet. Window sizes
//	          are kept for the PTY. It counts against the session limits
//	          (Config.Connect), or may only resume (borrow), and must get
//	          its start-session within Config.StartTimeout.
//	Starting  start-session received: credentials taken, the login
//	          back-off applied, SSH dialling.
//	Running   the shell is up: connection-ready was sent; output flows,
//	          input and window sizes go to the shell.
//	Ending    the end is decided (the shell exited, the client left, a
//	          limit, Kill, Shutdown): the SSH session is closed and the
//	          output pumps finish sending what they hold.
//	Ended     the client got its closing message (unless it had left) and
//	          was disconnected; the terminal is forgotten.
//
// A Running terminal whose client opted in to resume (StartResumable,
// Config.ResumeWindow) is attached to a client or detached: when its
// client leaves it is detached, not ended, and keeps running (output is
// read into a bounded buffer, then the SSH channel is no longer read;
// idle, lifetime and keepalive go on) until a client resumes it with the
// token of its last connection-ready (Resume, which ends the resuming
// client's own Waiting terminal and hands its client over), or the window
// passes (ErrResumeExpired). See resume.go. Every running terminal is
// probed with SSH keepalives (keepalive.go): a remote that stops
// answering ends it with ErrUnresponsive.
//
// Every way a terminal ends is an error value (ErrClientGone, ErrInactive,
// ErrKilled, a dial error from sshbridge, ...; nil for a shell that
// exited). Text gives the user's text for it and the Reason in Info
// classifies it for metrics and audit: that is the one place where both
// are decided, and the end is logged once, as "terminal ended".
//
// # Concurrency
//
// One goroutine, the owner, holds a terminal's state and takes every
// decision; the exported methods only post events to it, never block on
// the network, and are safe for concurrent use, before, during and after
// the terminal's life. The owner never waits on the network either:
// helpers do, each started on demand and ending on its own: the dial, the
// two output pumps (standard output and standard error, which x/crypto can
// only read by blocking), window changes, and the input writer, which
// writes what waits in the terminal's bounded input buffer (InputBuffer;
// a remote that stops reading while it is full ends the terminal). Once the shell runs, the
// owner also answers what the SSH server sends on its own (sshbridge.Serve),
// so a running terminal costs no goroutine more than its SSH session
// needs anyway. Counters read from other goroutines (bytes in and out,
// last activity, the state) are atomics: no lock per message.
//
// A Manager is the node's registry of terminals: lookups by id and by
// files token, List, Kill, Notice and Drain for a graceful drain, Wait and
// Shutdown. Observers (metrics, audit) are called by terminals, never the
// reverse, on the owner goroutine: they must not block.
package terminal
