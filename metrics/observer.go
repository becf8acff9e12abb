package metrics

import "github.com/alfresco-ssh/alfresco-ssh/terminal"

// Metrics is a terminal.Observer: every start-session is counted by
// result, every end of a started session by reason.
var _ terminal.Observer = (*Metrics)(nil)

// Started counts a session whose shell came up.
func (m *Metrics) Started(info terminal.Info) { m.SessionStarted(ResultOK, info.Connect) }

// Failed counts a start-session that got no shell. A start refused
// because the node drains or stops counts as denied; a client that left
// during the dial, as error.
func (m *Metrics) Failed(info terminal.Info) {
	result := string(info.Reason)
	if info.Reason == terminal.ReasonShutdown {
		result = ResultDenied
	}
	m.SessionStarted(result, 0)
}

// Ended counts the end of a started session.
func (m *Metrics) Ended(info terminal.Info) { m.SessionEnded(string(info.Reason)) }
