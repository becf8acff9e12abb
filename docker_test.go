package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// dockerfile is the Dockerfile's instructions, continuation lines joined.
func dockerfile(t *testing.T) [][2]string {
	t.Helper()
	var out [][2]string
	text := strings.ReplaceAll(readFile(t, "Dockerfile"), "\\\n", " ")
	for _, line := range strings.Split(text, "\n") {
		if line = strings.TrimSpace(line); line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		instr, args, _ := strings.Cut(line, " ")
		out = append(out, [2]string{strings.ToUpper(instr), strings.TrimSpace(args)})
	}
	return out
}

// TestDockerfile: docker cannot run here, so this checks what the image
// does from the Dockerfile: the entrypoint sets no flags, so that
// ALFRESCO_SSH_HOST and ALFRESCO_SSH_PORT work; ENV gives the container's
// defaults; the build's go build line stamps VERSION into --version.
func TestDockerfile(t *testing.T) {
	env := map[string]string{}
	var entrypoint, build string
	var expose []string
	for _, in := range dockerfile(t) {
		switch in[0] {
		case "ENV":
			for _, kv := range strings.Fields(in[1]) {
				k, v, _ := strings.Cut(kv, "=")
				env[k] = v
			}
		case "ENTRYPOINT":
			entrypoint = in[1]
		case "EXPOSE":
			expose = strings.Fields(in[1])
		case "RUN":
			if strings.Contains(in[1], "go build") {
				build = in[1]
			}
		}
	}
	if entrypoint != `["/alfresco-ssh"]` {
		t.Errorf(`got ENTRYPOINT %s, want ["/alfresco-ssh"] alone: flags there would override the environment`, entrypoint)
	}
	if env["ALFRESCO_SSH_HOST"] != "localnetwork" || env["ALFRESCO_SSH_PORT"] != "5000" || len(expose) != 1 || expose[0] != "5000" {
		t.Errorf("got ENV %v and EXPOSE %v, want ALFRESCO_SSH_HOST=localnetwork, ALFRESCO_SSH_PORT=5000, EXPOSE 5000", env, expose)
	}
	// What the image's binary reads: its ENV, then docker run -e on top.
	for override, wantAddr := range map[string]string{"": ":5000", "8080": ":8080"} {
		e := map[string]string{"ALFRESCO_SSH_HOST": env["ALFRESCO_SSH_HOST"], "ALFRESCO_SSH_PORT": env["ALFRESCO_SSH_PORT"]}
		if override != "" {
			e["ALFRESCO_SSH_PORT"] = override
		}
		o, err := parseFlags(nil, func(k string) string { return e[k] }, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, addr, err := o.config(func(string) string { return "" }); err != nil || addr != wantAddr {
			t.Errorf("ALFRESCO_SSH_PORT=%s: got address %q (%v), want %q", e["ALFRESCO_SSH_PORT"], addr, err, wantAddr)
		}
	}

	// The build line, as the image runs it, with and without VERSION; but
	// with -race for -trimpath and cgo, so that it links the packages this
	// test run has compiled already instead of compiling them all again.
	if !strings.Contains(build, "-o /out/alfresco-ssh") || !strings.Contains(build, "CGO_ENABLED=0 go build -trimpath ") {
		t.Fatalf("got build line %q, want CGO_ENABLED=0 go build -trimpath ... -o /out/alfresco-ssh", build)
	}
	build = strings.Replace(build, "CGO_ENABLED=0 go build -trimpath ", "go build -race ", 1)
	for version, want := range map[string]*regexp.Regexp{
		"v9.9.9-test": regexp.MustCompile(`^alfresco-ssh v9\.9\.9-test\n$`),
		"":            regexp.MustCompile(`^alfresco-ssh (dev|v0\.0\.0-)\S*\n$`),
	} {
		bin := filepath.Join(t.TempDir(), "alfresco-ssh")
		cmd := exec.CommandContext(t.Context(), "/bin/sh", "-c", strings.Replace(build, "/out/alfresco-ssh", bin, 1))
		cmd.Env = append(os.Environ(), "VERSION="+version)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", build, err, out)
		}
		out, err := exec.CommandContext(t.Context(), bin, "--version").Output()
		if err != nil || !want.Match(out) {
			t.Errorf("VERSION=%q: --version printed %q (%v), want %s", version, out, err, want)
		}
	}
}
