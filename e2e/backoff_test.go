package e2e

import (
	"testing"

	"github.com/alfresco-ssh/alfresco-ssh/internal/servicetest"
	"github.com/alfresco-ssh/alfresco-ssh/internal/sshdtest"
)

// TestLoginBackoffAcrossNodes: with a Redis store, a login that fails on
// one node counts on the other (--auth-failures 1: the next is refused).
func TestLoginBackoffAcrossNodes(t *testing.T) {
	sshd := sshdtest.Start(t)
	redis := servicetest.StartRedis(t)
	nodes := startNodes(t, 2, redis.URL, "--auth-failures", "1")
	wrong := login(sshd)
	wrong["password"] = "not-" + sshd.Password
	failed := scenario{URL: nodes[0].url, Start: map[string]any{"credentials_uuid": nodes[0].createCredentials(t, wrong)},
		WaitReady: new(bool), WaitEnd: true}
	checkEnded(t, runClient(t, failed), "authentication failed")
	refused := scenario{URL: nodes[1].url, Start: map[string]any{"credentials_uuid": nodes[1].createCredentials(t, login(sshd))},
		WaitReady: new(bool), WaitEnd: true}
	checkEnded(t, runClient(t, refused), "too many failed logins from your address")
}
