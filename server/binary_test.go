package server

import (
	"strconv"
	"strings"
	"testing"

	"github.com/alfresco-ssh/alfresco-ssh/internal/sshdtest"
)

// TestBinaryOutput: a client that opts in with "binary_output": true gets
// terminal output as attachments, over every transport and across an
// upgrade, and decodes it as one UTF-8 stream (characters split between
// messages included); the closing message stays text. A closing message
// sent while output floods never lands between a header and its
// attachment (the client's decoder would fail).
func TestBinaryOutput(t *testing.T) {
	sshd := sshdtest.Start(t)
	g := startGateway(t, Config{})
	for _, ts := range [][]string{{"websocket"}, {"polling", "websocket"}, {"polling"}} {
		t.Run(transportName(ts), func(t *testing.T) {
			r := runClient(t, scenario{
				URL: g.url, Transports: ts,
				Start:     map[string]any{"credentials_uuid": g.create(t, passwordLogin(sshd)), "binary_output": true},
				WaitReady: waitReady, WaitEnd: true,
				Steps: []step{
					{Expect: prompt},
					{Send: `printf 'caf\303\251 \342\202\254 \360\237\230\200 %s\n' done-$((6*7))` + "\n"},
					{Expect: "café € 😀 done-42\r\n"},
					{Send: "for i in $(seq 3000); do printf '%s é€😀\\n' $i; done\n"},
					{Expect: "\r\n3000 é€😀\r\n"},
					{Send: "exit\n"},
				},
			})
			if p := r.Problem(); p != "" {
				t.Fatalf("%s; output %q", p, truncate(r.Output, 2000))
			}
			if r.BinaryEvents == 0 || r.BinaryEvents != r.OutputEvents {
				t.Errorf("got %d binary of %d output messages, want all binary", r.BinaryEvents, r.OutputEvents)
			}
			for i := 1; i <= 3000; i++ {
				if !strings.Contains(r.Output, "\n"+strconv.Itoa(i)+" é€😀\r\n") {
					t.Fatalf("line %d missing or broken in the decoded output", i)
				}
			}
			checkClosed(t, r, "Connection closed")
		})
	}
	t.Run("closing during a flood", func(t *testing.T) {
		r := runClient(t, scenario{
			URL: g.url, Transports: []string{"websocket"},
			Start:     map[string]any{"credentials_uuid": g.create(t, passwordLogin(sshd)), "binary_output": true},
			WaitReady: waitReady, WaitEnd: true,
			Steps: []step{
				{Expect: prompt},
				{Send: "yes 'é€😀 0123456789'\n"},
				{Expect: "0123456789\r\né€😀"},
				{Emit: "timeout"},
			},
		})
		if p := r.Problem(); p != "" {
			t.Fatalf("%s; output %q", p, truncate(r.Output, 2000))
		}
		checkClosed(t, r, "inactivity")
		if r.Closing != nil && !r.Closing.Timeout {
			t.Errorf("closing message: timeout false, want true")
		}
	})
}
