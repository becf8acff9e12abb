package server

import (
	"errors"
	"log/slog"
	"math"

	"github.com/zishang520/socket.io/servers/socket/v3"

	"github.com/alfresco-ssh/alfresco-ssh/terminal"
)

// Resume (PROTOCOL.md, Extensions): start-session may opt in with
// "resume": true (and to binary output with "binary_output": true);
// resume-session {resume_token, seq} takes a detached
// session back; ssh-ack {seq} acknowledges output. The terminal package
// does the rest.

// onSessionEvents registers start-session, resume-session and ssh-ack.
func onSessionEvents(sock *socket.Socket, log *slog.Logger, t *terminal.Terminal) {
	sock.On("start-session", func(args ...any) {
		r, err := decodeStartSession(args)
		switch {
		case err != nil:
			log.Debug("rejected start-session", "err", err)
			t.Start("") // the closing message says why
		default:
			t.StartWith(r.id, r.opts)
		}
	})
	on(sock, log, "resume-session", decodeResume, func(r resumeRequest) { t.Resume(r.token, r.seq) })
	on(sock, log, "ssh-ack", decodeAck, t.Ack)
}

type startRequest struct {
	id   string
	opts terminal.StartOptions
}

// decodeStartSession is decodeStart with the opt-ins: "resume": true,
// "binary_output": true.
func decodeStartSession(args []any) (startRequest, error) {
	id, err := decodeStart(args)
	if err != nil {
		return startRequest{}, err
	}
	m, _ := payload(args)
	resume, _ := m["resume"].(bool)
	binary, _ := m["binary_output"].(bool)
	return startRequest{id: id, opts: terminal.StartOptions{Resume: resume, Binary: binary}}, nil
}

type resumeRequest struct {
	token string
	seq   uint64
}

// maxSeq is the largest seq a JSON number holds exactly.
const maxSeq = 1 << 53

// decodeResume reads {"resume_token": t, "seq": n}. A token that is not
// a string is an unknown one, which the terminal refuses with the closing
// message rather than leaving the client waiting; a missing or invalid
// seq is 0 (the client has nothing to show).
func decodeResume(args []any) (resumeRequest, error) {
	m, err := payload(args)
	if err != nil {
		return resumeRequest{}, err
	}
	token, _ := m["resume_token"].(string)
	if len(token) > 256 {
		token = ""
	}
	seq, _ := decodeSeq(m["seq"])
	return resumeRequest{token: token, seq: seq}, nil
}

// decodeAck reads {"seq": n}.
func decodeAck(args []any) (uint64, error) {
	m, err := payload(args)
	if err != nil {
		return 0, err
	}
	return decodeSeq(m["seq"])
}

func decodeSeq(v any) (uint64, error) {
	f, ok := v.(float64)
	if !ok || f != math.Trunc(f) || f < 0 || f > maxSeq {
		return 0, errors.New("seq must be a non-negative integer")
	}
	return uint64(f), nil
}

// resumeFields adds what connection-ready says about resume.
func resumeFields(payload map[string]any, r terminal.Ready) {
	if r.ResumeToken != "" {
		payload["resume_token"] = r.ResumeToken
	}
	if r.Resumed {
		payload["resumed"] = true
	}
	if r.Partial {
		payload["partial"] = true
	}
}
