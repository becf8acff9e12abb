package audit

import (
	"log/slog"
	"time"

	"github.com/alfresco-ssh/alfresco-ssh/files"
	"github.com/alfresco-ssh/alfresco-ssh/terminal"
)

// Observer writes a line for every session start, end and failed start
// (a terminal.Observer) and every file transfer (Transfer). A line that
// cannot be written is logged, and the terminal goes on.
type Observer struct {
	Log *Log
	// Logger gets the write errors.
	Logger *slog.Logger
	// Terminal describes the terminal of a file transfer (Manager.Get);
	// nil, or a terminal gone meanwhile, leaves its fields out.
	Terminal func(id string) (terminal.Info, bool)
}

var _ terminal.Observer = (*Observer)(nil)

// Started writes session_start.
func (o *Observer) Started(info terminal.Info) { o.write(session(SessionStart, info)) }

// Failed writes session_failed, with the reason.
func (o *Observer) Failed(info terminal.Info) {
	e := session(SessionFailed, info)
	e.Reason = string(info.Reason)
	o.write(e)
}

// Ended writes session_end, with the duration, the bytes and the reason.
func (o *Observer) Ended(info terminal.Info) {
	e := session(SessionEnd, info)
	d := time.Since(info.Started).Seconds()
	e.DurationS, e.BytesIn, e.BytesOut, e.Reason = &d, &info.BytesIn, &info.BytesOut, string(info.Reason)
	o.write(e)
}

// Transfer writes file_transfer, for files.Config.Audit.
func (o *Observer) Transfer(t files.Transfer) {
	e := Event{Event: FileTransfer, Session: t.Session}
	if o.Terminal != nil {
		if info, ok := o.Terminal(t.Session); ok {
			e = session(FileTransfer, info)
		}
	}
	d := t.Duration.Seconds()
	e.DurationS, e.Direction, e.Path, e.Bytes, e.Result = &d, t.Direction, t.Path, &t.Bytes, t.Result
	o.write(e)
}

func session(kind string, info terminal.Info) Event {
	return Event{Event: kind, Session: info.ID, Client: info.Client, Target: info.Target,
		User: info.User, Auth: info.Auth, HostKey: info.HostKey}
}

func (o *Observer) write(e Event) {
	if err := o.Log.Write(e); err != nil && o.Logger != nil {
		o.Logger.Warn("audit log", "err", err)
	}
}
