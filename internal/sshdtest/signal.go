package sshdtest

import "syscall"

// Signal sends sig to every live process descending from the sshd
// listener (the connections' processes and the shells), not to the
// listener: SIGSTOP freezes every connection as a paused host would,
// SIGCONT lets them go on. It returns how many processes it signalled.
func (s *Server) Signal(sig syscall.Signal) int {
	n := 0
	for _, p := range s.descendants() {
		if syscall.Kill(p.pid, sig) == nil {
			n++
		}
	}
	return n
}
