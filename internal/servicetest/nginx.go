package servicetest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// Nginx is a running nginx serving one site configuration.
type Nginx struct {
	// Addr is "127.0.0.1:port"; URL is "http://127.0.0.1:port".
	Addr, URL string
	dir       string
}

// StartNginx starts nginx for the test and stops it in t.Cleanup. site
// returns the http-context configuration (upstreams, server blocks) for
// the listen address it is given ("127.0.0.1:port").
func StartNginx(t testing.TB, site func(listen string) string) *Nginx {
	t.Helper()
	bin := lookBinary(t, "nginx", "nginx")
	n := &Nginx{dir: serviceDir(t, "nginxtest")}
	p, port := startOnFreePort(t, func(port int) (*process, error) {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if err := n.writeConfig(site(addr)); err != nil {
			return nil, err
		}
		log := filepath.Join(n.dir, "error.log")
		cmd := exec.Command(bin, "-p", n.dir, "-c", filepath.Join(n.dir, "nginx.conf"), "-g", "daemon off;")
		return launch(cmd, func() bool { return listening(addr) }, log)
	})
	n.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	n.URL = "http://" + n.Addr
	t.Cleanup(p.stop)
	return n
}

// writeConfig writes nginx.conf around the site: everything nginx writes
// stays in the directory.
func (n *Nginx) writeConfig(site string) error {
	if err := os.WriteFile(filepath.Join(n.dir, "site.conf"), []byte(site), 0o644); err != nil {
		return err
	}
	user := ""
	if os.Geteuid() == 0 {
		user = "user nobody nogroup;\n"
	}
	conf := fmt.Sprintf(`%spid %[2]s/nginx.pid;
error_log %[2]s/error.log info;
worker_processes 1;
events { worker_connections 4096; }
http {
	access_log %[2]s/access.log;
	client_body_temp_path %[2]s/body;
	proxy_temp_path %[2]s/proxy;
	fastcgi_temp_path %[2]s/fastcgi;
	uwsgi_temp_path %[2]s/uwsgi;
	scgi_temp_path %[2]s/scgi;
	include %[2]s/site.conf;
}
`, user, n.dir)
	return os.WriteFile(filepath.Join(n.dir, "nginx.conf"), []byte(conf), 0o644)
}

// Log returns nginx's error log.
func (n *Nginx) Log() string { return readLog(filepath.Join(n.dir, "error.log")) }

func listening(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		c.Close()
	}
	return err == nil
}
