package sshdtest

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// proc is one process as /proc/PID/stat describes it.
type proc struct {
	pid, ppid int
	state     byte   // R, S, D, Z, ...
	comm      string // the executable's name, 15 bytes at most
	depth     int    // below the root given to descendants: 1 for a child
}

// String names the process for an error message, with its command line,
// which sshd rewrites to say what the process does ("sshd: user@pts/0").
func (p proc) String() string {
	cmdline, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(p.pid), "cmdline"))
	cmdline = bytes.TrimRight(bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '}), " ")
	return fmt.Sprintf("pid %d (%s, state %c): %q", p.pid, p.comm, p.state, cmdline)
}

// processes reads every process in /proc. Processes that exit while it reads
// are left out.
func processes() []proc {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var ps []proc
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		if p, ok := parseStat(pid, stat); ok {
			ps = append(ps, p)
		}
	}
	return ps
}

// parseStat parses "pid (comm) state ppid ...". comm may itself hold spaces
// and parentheses, so it ends at the last ')'.
func parseStat(pid int, stat []byte) (proc, bool) {
	open, end := bytes.IndexByte(stat, '('), bytes.LastIndexByte(stat, ')')
	if open < 0 || end < open {
		return proc{}, false
	}
	rest := bytes.Fields(stat[end+1:])
	if len(rest) < 2 || len(rest[0]) != 1 {
		return proc{}, false
	}
	ppid, err := strconv.Atoi(string(rest[1]))
	if err != nil {
		return proc{}, false
	}
	return proc{pid: pid, ppid: ppid, state: rest[0][0], comm: string(stat[open+1 : end])}, true
}

// descendants returns the live (not zombie) processes below root, parents
// before children, found by parent chains: sshd's per-connection processes start sessions of their own, so
// process groups and sessions do not find them.
func descendants(root int) []proc {
	children := map[int][]proc{}
	for _, p := range processes() {
		children[p.ppid] = append(children[p.ppid], p)
	}
	var out []proc
	queue := []proc{{pid: root}}
	for len(queue) > 0 {
		parent := queue[0]
		queue = queue[1:]
		for _, c := range children[parent.pid] {
			c.depth = parent.depth + 1
			queue = append(queue, c)
			if c.state != 'Z' {
				out = append(out, c)
			}
		}
	}
	return out
}

// alive returns the processes of ps that still run (not zombies).
func alive(ps []proc) []proc {
	var out []proc
	for _, p := range ps {
		stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(p.pid), "stat"))
		if err != nil {
			continue
		}
		if now, ok := parseStat(p.pid, stat); ok && now.state != 'Z' {
			out = append(out, p)
		}
	}
	return out
}
