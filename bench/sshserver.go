package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/alfresco-ssh/alfresco-ssh/internal/lightssh"
)

// sshServerEnv makes this binary the scale mode's remote side: a light SSH
// server (internal/lightssh) in a process of its own, since OpenSSH forks
// per login and cannot hold 10,000 on this kind of machine. Its shell
// prints the prompt the bench's typists wait for.
const sshServerEnv = "ALFRESCO_BENCH_SSHSERVER"

type sshServerConfig struct {
	User     string `json:"user"`
	Password string `json:"password"`
}

// sshServerReady is the light SSH server's first line.
type sshServerReady struct {
	Host string `json:"host"`
	Port int    `json:"port"`
}

// sshServerStats answers the "stats" request.
type sshServerStats struct {
	Conns int `json:"conns"`
}

func sshServerMain(raw string) int {
	var c sshServerConfig
	if err := json.Unmarshal([]byte(raw), &c); err != nil {
		fmt.Fprintln(os.Stderr, "bench ssh server: bad config:", err)
		return 2
	}
	srv, err := lightssh.Listen("127.0.0.1:0", lightssh.Options{User: c.User, Password: c.Password, Prompt: prompt})
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench ssh server:", err)
		return 1
	}
	defer srv.Close()
	a := srv.Addr()
	err = serveCtl(sshServerReady{Host: a.IP.String(), Port: a.Port}, func(req ctlRequest) (any, error) {
		if req.Op != "stats" {
			return nil, fmt.Errorf("unknown request %q", req.Op)
		}
		return sshServerStats{Conns: srv.Conns()}, nil
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench ssh server:", err)
		return 1
	}
	return 0
}
