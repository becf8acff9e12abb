package server

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/alfresco-ssh/alfresco-ssh/audit"
	"github.com/alfresco-ssh/alfresco-ssh/internal/sshdtest"
	"github.com/alfresco-ssh/alfresco-ssh/internal/syncbuf"
	"github.com/alfresco-ssh/alfresco-ssh/terminal"
)

// TestFileTransfersAudited: with Config.FilesAudit, each transfer is a
// file_transfer line of the audit log, with its terminal's who and where,
// and never the files token.
func TestFileTransfersAudited(t *testing.T) {
	sshd := sshdtest.Start(t)
	var lines syncbuf.Buffer
	log, err := audit.Open("-", &lines)
	if err != nil {
		t.Fatal(err)
	}
	var srv atomic.Pointer[Server]
	obs := &audit.Observer{Log: log, Terminal: func(id string) (terminal.Info, bool) {
		t, ok := srv.Load().Terminals().Get(id)
		if !ok {
			return terminal.Info{}, false
		}
		return t.Info(), true
	}}
	g := startGateway(t, Config{Files: true, Observers: []terminal.Observer{obs}, FilesAudit: obs.Transfer})
	srv.Store(g.srv)
	term := openRawTerminal(t, g, sshd)
	token := term.token(t)

	dir := sshd.UserDir(t)
	if status, body := uploadFile(t, g, token, dir, "audited.txt", "12345"); status != http.StatusOK {
		t.Fatalf("upload: got %d %s", status, body)
	}
	if status, _, body := filesRequest(t, g, "GET", "download?path="+dir+"/audited.txt", token, nil, nil); status != http.StatusOK || body != "12345" {
		t.Fatalf("download: got %d %q", status, body)
	}

	var events []map[string]any
	for line := range strings.Lines(lines.String()) {
		var e map[string]any
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		events = append(events, e)
	}
	if len(events) != 3 || events[0]["event"] != "session_start" {
		t.Fatalf("got %v, want session_start and two file_transfer lines", events)
	}
	for i, want := range []string{"upload", "download"} {
		e := events[i+1]
		if e["event"] != "file_transfer" || e["direction"] != want || e["path"] != dir+"/audited.txt" ||
			e["bytes"] != float64(5) || e["result"] != "ok" || e["session"] != events[0]["session"] ||
			e["user"] != sshd.User || e["target"] != sshd.Addr || e["client"] != "127.0.0.1" {
			t.Errorf("got %v, want the %s of audited.txt in the terminal's session", e, want)
		}
	}
	if strings.Contains(lines.String(), token) {
		t.Error("the audit log holds the files token")
	}
}
