package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// run is a `go test -json -p 1` run of three packages, recorded with Go
// 1.26 and shortened: one passes with a skip, one fails a subtest, one does
// not build.
const run = `{"Time":"2026-12-02T17:00:00Z","Action":"start","Package":"example.com/m/a"}
{"Time":"2026-12-02T17:00:00.1Z","Action":"run","Package":"example.com/m/a","Test":"TestSkip"}
{"Time":"2026-12-02T17:00:00.1Z","Action":"output","Package":"example.com/m/a","Test":"TestSkip","Output":"=== RUN   TestSkip\n"}
{"Time":"2026-12-02T17:00:00.1Z","Action":"output","Package":"example.com/m/a","Test":"TestSkip","Output":"    a_test.go:4: sshdtest: no /usr/sbin/sshd (install openssh-server)\n"}
{"Time":"2026-12-02T17:00:00.1Z","Action":"output","Package":"example.com/m/a","Test":"TestSkip","Output":"--- SKIP: TestSkip (0.00s)\n"}
{"Time":"2026-12-02T17:00:00.1Z","Action":"skip","Package":"example.com/m/a","Test":"TestSkip","Elapsed":0}
{"Time":"2026-12-02T17:00:00.2Z","Action":"run","Package":"example.com/m/a","Test":"TestSlow"}
{"Time":"2026-12-02T17:00:00.2Z","Action":"output","Package":"example.com/m/a","Test":"TestSlow","Output":"=== RUN   TestSlow\n"}
{"Time":"2026-12-02T17:00:45Z","Action":"output","Package":"example.com/m/a","Test":"TestSlow","Output":"--- PASS: TestSlow (45.00s)\n"}
{"Time":"2026-12-02T17:00:45Z","Action":"pass","Package":"example.com/m/a","Test":"TestSlow","Elapsed":45}
{"Time":"2026-12-02T17:00:45Z","Action":"output","Package":"example.com/m/a","Output":"PASS\n"}
{"Time":"2026-12-02T17:00:45Z","Action":"output","Package":"example.com/m/a","Output":"ok  \texample.com/m/a\t45.1s\n"}
{"Time":"2026-12-02T17:00:45Z","Action":"pass","Package":"example.com/m/a","Elapsed":45.1}
{"Time":"2026-12-02T17:00:46Z","Action":"start","Package":"example.com/m/b"}
{"Time":"2026-12-02T17:00:46Z","Action":"run","Package":"example.com/m/b","Test":"TestB"}
{"Time":"2026-12-02T17:00:46Z","Action":"output","Package":"example.com/m/b","Test":"TestB","Output":"=== RUN   TestB\n"}
{"Time":"2026-12-02T17:00:46Z","Action":"run","Package":"example.com/m/b","Test":"TestB/ok"}
{"Time":"2026-12-02T17:00:46Z","Action":"output","Package":"example.com/m/b","Test":"TestB/ok","Output":"    b_test.go:5: quiet detail\n"}
{"Time":"2026-12-02T17:00:46Z","Action":"pass","Package":"example.com/m/b","Test":"TestB/ok","Elapsed":0}
{"Time":"2026-12-02T17:00:46Z","Action":"run","Package":"example.com/m/b","Test":"TestB/bad"}
{"Time":"2026-12-02T17:00:46Z","Action":"output","Package":"example.com/m/b","Test":"TestB/bad","Output":"    b_test.go:9: got 1, want 2\n"}
{"Time":"2026-12-02T17:00:46Z","Action":"fail","Package":"example.com/m/b","Test":"TestB/bad","Elapsed":0}
{"Time":"2026-12-02T17:00:46Z","Action":"output","Package":"example.com/m/b","Test":"TestB","Output":"--- FAIL: TestB (0.00s)\n"}
{"Time":"2026-12-02T17:00:46Z","Action":"fail","Package":"example.com/m/b","Test":"TestB","Elapsed":0}
{"Time":"2026-12-02T17:00:46Z","Action":"output","Package":"example.com/m/b","Output":"FAIL\n"}
{"Time":"2026-12-02T17:00:46Z","Action":"output","Package":"example.com/m/b","Output":"goleak: found unexpected goroutines\n"}
{"Time":"2026-12-02T17:00:46Z","Action":"output","Package":"example.com/m/b","Output":"FAIL\texample.com/m/b\t0.2s\n"}
{"Time":"2026-12-02T17:00:46Z","Action":"fail","Package":"example.com/m/b","Elapsed":0.2}
{"ImportPath":"example.com/m/c [example.com/m/c.test]","Action":"build-output","Output":"# example.com/m/c [example.com/m/c.test]\n"}
{"ImportPath":"example.com/m/c [example.com/m/c.test]","Action":"build-output","Output":"c/c.go:2:23: invalid operation\n"}
{"ImportPath":"example.com/m/c [example.com/m/c.test]","Action":"build-fail"}
{"Time":"2026-12-02T17:00:47Z","Action":"start","Package":"example.com/m/c"}
{"Time":"2026-12-02T17:00:47Z","Action":"output","Package":"example.com/m/c","Output":"FAIL\texample.com/m/c [build failed]\n"}
{"Time":"2026-12-02T17:00:47Z","Action":"fail","Package":"example.com/m/c","Elapsed":0,"FailedBuild":"example.com/m/c [example.com/m/c.test]"}
`

var start = time.Date(2026, 12, 2, 17, 0, 0, 0, time.UTC)

// feed hands p the events of run from line from to line to.
func feed(t *testing.T, p *progress, from, to int) {
	t.Helper()
	lines := strings.SplitAfter(run, "\n")
	if err := p.read(strings.NewReader(strings.Join(lines[from:min(to, len(lines))], ""))); err != nil {
		t.Fatal(err)
	}
}

func TestProgress(t *testing.T) {
	var out bytes.Buffer
	p := newProgress(&out, "example.com/m/", start)
	feed(t, p, 0, 8)                    // then 31 s of silence while TestSlow runs
	p.tick(start.Add(10 * time.Second)) // too soon for a heartbeat
	p.tick(start.Add(31 * time.Second))
	feed(t, p, 8, 100)
	if ok := p.finish(start.Add(47 * time.Second)); ok {
		t.Error("finish: got true, want false (two packages failed)")
	}
	want := `[00:00] a ...
[00:31]      a: 1 tests done after 31.0s, running TestSlow (30.8s)
[00:45] ok   a (45.1s) 2 tests
[00:46] b ...
=== b TestB/bad
    b_test.go:9: got 1, want 2
=== b TestB
=== RUN   TestB
--- FAIL: TestB (0.00s)
[00:46] FAIL b (0.2s): TestB/bad
goleak: found unexpected goroutines
[00:47] c ...
[00:47] FAIL c (0.0s)
# example.com/m/c [example.com/m/c.test]
c/c.go:2:23: invalid operation

1 packages ok, 2 failed in 47.0s: b, c
1 tests skipped:
    a TestSkip: sshdtest: no /usr/sbin/sshd (install openssh-server)
`
	if got := out.String(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestProgressAllPass(t *testing.T) {
	var out bytes.Buffer
	p := newProgress(&out, "example.com/m/", start)
	feed(t, p, 0, 13)
	if !p.finish(start.Add(46 * time.Second)) {
		t.Errorf("finish: got false, want true\n%s", out.String())
	}
}

func TestUnfinishedPackageFails(t *testing.T) {
	var out bytes.Buffer
	p := newProgress(&out, "example.com/m/", start)
	feed(t, p, 0, 8)
	if p.finish(start.Add(time.Minute)) {
		t.Error("finish: got true for a package that never ended, want false")
	}
	if !strings.Contains(out.String(), "a (no result)") {
		t.Errorf("got %q, want the package without a result named", out.String())
	}
}
