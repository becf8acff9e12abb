package sshbridge

// Probe asks the remote whether it is still there, with the global
// request keepalive@openssh.com (as OpenSSH's ServerAliveInterval does),
// and returns once it answers: a refusal, which is what servers answer to
// a request they do not know, is an answer too. It blocks while the
// remote is silent and returns an error once the connection is closed.
func (s *Session) Probe() error {
	_, _, err := s.conn.SendRequest("keepalive@openssh.com", true, nil)
	return err
}
