package sshbridge

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// ErrNoSFTP says the remote refused the "sftp" subsystem (sshd has no
// Subsystem sftp line, or the account may not use it).
var ErrNoSFTP = errors.New("sftp subsystem unavailable")

// sftpRequests bounds the SFTP requests one file transfer keeps in flight
// (32 KiB each). The shell's keystrokes share the TCP connection and queue
// behind the data in flight: OpenSSH's default of 64 (2 MiB) made echo wait
// a second and more during an upload on a loaded machine; 16 (512 KiB)
// keeps it to milliseconds and loses no throughput near the SSH server
// (see files/filesbench).
const sftpRequests = 16

// sftpConn is a Session's SFTP client. A Session that never transferred a
// file has none, and so spends no goroutine on it.
type sftpConn struct {
	mu     sync.Mutex // held while opening: concurrent first callers wait for one open
	client *sftp.Client
	ch     *sftpChannel // the client's channel
}

// SFTP returns an SFTP client on the session's own SSH connection: the
// "sftp" subsystem on a channel of its own beside the shell's, so no second
// login is needed and the shell stays responsive during transfers. The
// first call opens it (round trips for the channel, the subsystem and the
// SFTP version); later calls return the same client, which is safe for
// concurrent use, until the remote ends the subsystem (sshd's
// ChannelTimeout, for one): the next call then opens a new one. Closing the
// Session ends it; the caller must not Close it. The error matches
// ErrNoSFTP when the remote refuses the subsystem.
//
// While open, SFTP costs the session two goroutines: the client's reader
// and one that declines the requests the remote sends on the channel.
func (s *Session) SFTP() (*sftp.Client, error) {
	c := &s.sftp
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.client != nil {
		if !c.ch.ended.Load() {
			return c.client, nil
		}
		c.client.Close() // its reader has ended: this only releases it
		c.client, c.ch = nil, nil
	}
	ch, reqs, err := s.conn.OpenChannel("session", nil)
	if err != nil {
		return nil, fmt.Errorf("sshbridge: open sftp channel: %w", err)
	}
	// x/crypto closes reqs when the channel closes, which ends this.
	go ssh.DiscardRequests(reqs)
	if err := request(ch, "subsystem", ssh.Marshal(struct{ Name string }{"sftp"})); err != nil {
		ch.Close()
		return nil, fmt.Errorf("sshbridge: %w: %w", ErrNoSFTP, err)
	}
	sc := &sftpChannel{Channel: ch}
	// UseFstat: a pipelined read (File.WriteTo) learns the size of the
	// file it has open, not of whatever its path names by then.
	client, err := sftp.NewClientPipe(sc, ch, sftp.MaxConcurrentRequestsPerFile(sftpRequests), sftp.UseFstat(true))
	if err != nil {
		ch.Close()
		return nil, fmt.Errorf("sshbridge: start sftp: %w", err)
	}
	c.client, c.ch = client, sc
	return client, nil
}

// sftpChannel is the channel an SFTP client reads. It notes when the
// channel has ended, before the client's reader sees it end, so that SFTP
// never hands out a client whose channel is gone.
type sftpChannel struct {
	ssh.Channel
	ended atomic.Bool
}

func (c *sftpChannel) Read(p []byte) (int, error) {
	n, err := c.Channel.Read(p)
	if err != nil {
		c.ended.Store(true)
	}
	return n, err
}
