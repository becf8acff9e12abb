package policy

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func mustRules(t testing.TB, s string) []TargetRule {
	t.Helper()
	rules, err := ParseTargetRules(s)
	if err != nil {
		t.Fatalf("ParseTargetRules(%q): %v", s, err)
	}
	return rules
}

func ruleStrings(rules []TargetRule) []string {
	out := []string{}
	for _, r := range rules {
		out = append(out, r.String())
	}
	return out
}

func TestParseTargetRules(t *testing.T) {
	tests := []struct {
		in   string
		want []string // canonical forms
	}{
		{"", []string{}},
		{" , ,10.0.0.0/8 , ", []string{"10.0.0.0/8"}},
		{"10.1.2.3/8", []string{"10.0.0.0/8"}},
		{"192.0.2.7", []string{"192.0.2.7"}},
		{"2001:db8::1", []string{"2001:db8::1"}},
		{"2001:DB8::/32", []string{"2001:db8::/32"}},
		{"10.0.0.0/8:22", []string{"10.0.0.0/8:22"}},
		{"[2001:db8::/32]:22", []string{"[2001:db8::/32]:22"}},
		{"[2001:db8::1]:22", []string{"[2001:db8::1]:22"}},
		{"[2001:db8::1]", []string{"2001:db8::1"}},
		{"[192.0.2.7]:22", []string{"192.0.2.7:22"}},
		{"[10.0.0.0/8]:22", []string{"10.0.0.0/8:22"}},
		{"2001:db8::1:22", []string{"2001:db8::1:22"}}, // an address, not a port
		{"::ffff:192.0.2.7", []string{"192.0.2.7"}},
		{"::ffff:10.0.0.0/104", []string{"10.0.0.0/8"}},
		{"*.Lab.Example.com.:2200-2299", []string{"*.lab.example.com:2200-2299"}},
		{"host.example.com:22", []string{"host.example.com:22"}},
		{"db?.example.com", []string{"db?.example.com"}},
		{"*", []string{"*"}},
		{"*:22", []string{"*:22"}},
		{"h:22-22", []string{"h:22"}},
		{"h:1-65535", []string{"h:1-65535"}},
		{"h:022", []string{"h:22"}},
		{"my_host-1", []string{"my_host-1"}},
		{"a.example.com,10.0.0.0/8,[::1]:22", []string{"a.example.com", "10.0.0.0/8", "[::1]:22"}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			rules, err := ParseTargetRules(tt.in)
			if err != nil {
				t.Fatalf("got error %v, want %q", err, tt.want)
			}
			if got := ruleStrings(rules); !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseTargetRulesErrors(t *testing.T) {
	tests := []struct{ in, bad, why string }{
		{"10.0.0.0/33", "", "CIDR"},
		{"10.0.0.256/8", "", "CIDR"},
		{"10.0.0.0/", "", "CIDR"},
		{"[2001:db8::1", "", "missing ]"},
		{"[2001:db8::1]22", "", `after "]"`},
		{"[2001:db8::1]:", "", "missing port"},
		{"[]:22", "", "missing address"},
		{"[not-an-ip]:22", "", "not a valid IP"},
		{"2001:db8::1::2", "", "not a valid IP"},
		{"fe80::1%eth0", "", "zones"},
		{"[fe80::1%eth0]:22", "", "zones"},
		{"host:", "", "missing port"},
		{":22", "", "missing address"},
		{"host:0", "", "between 1 and 65535"},
		{"host:65536", "", "between 1 and 65535"},
		{"host:ssh", "", "between 1 and 65535"},
		{"host:+22", "", "between 1 and 65535"},
		{"host:22-", "", "between 1 and 65535"},
		{"host:-22", "", "between 1 and 65535"},
		{"host:1-2-3", "", "between 1 and 65535"},
		{"host:2299-2200", "", "reversed"},
		{"ho st", "", "invalid character"},
		{"exa$mple.com", "", "invalid character"},
		{"héllo.example.com", "", "invalid character"},
		{".example.com", "", "empty label"},
		{"a..example.com", "", "empty label"},
		{".", "", "missing host name"},
		{"10.0.0.*", "", "CIDR range"},
		{"10.1", "", "CIDR range"},
		{strings.Repeat("a", 254), "", "too long"},
		{"ok.example.com, bad..rule ,10.0.0.0/8", "bad..rule", "empty label"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			rules, err := ParseTargetRules(tt.in)
			if err == nil {
				t.Fatalf("got rules %q, want an error", ruleStrings(rules))
			}
			bad := tt.bad
			if bad == "" {
				bad = tt.in
			}
			if msg := err.Error(); !strings.Contains(msg, strconv.Quote(bad)) || !strings.Contains(msg, tt.why) {
				t.Errorf("got error %q, want one naming %q and saying %q", msg, bad, tt.why)
			}
		})
	}
}

func TestTargetPatternMatch(t *testing.T) {
	tests := []struct {
		pattern, name string
		want          bool
	}{
		{"host.example.com", "host.example.com", true},
		{"host.example.com", "xhost.example.com", false},
		{"*.lab.example.com", "a.lab.example.com", true},
		{"*.lab.example.com", "a.b.lab.example.com", true}, // "*" crosses dots
		{"*.lab.example.com", "lab.example.com", false},
		{"*.lab.example.com", "a.lab.example.com.evil.net", false},
		{"db?.example.com", "db1.example.com", true},
		{"db?.example.com", "db12.example.com", false},
		{"db?.example.com", "db.example.com", false},
		{"*", "", true},
		{"*", "anything.at.all", true},
		{"a*b*c", "aXbYbZc", true},
		{"a*b*c", "aXbYbZ", false},
		{"*a*a*a*a*b", strings.Repeat("a", 60), false},
		{"?", "", false},
		{"", "", true},
		{"", "a", false},
	}
	for _, tt := range tests {
		if got := matchPattern(tt.pattern, tt.name); got != tt.want {
			t.Errorf("matchPattern(%q, %q): got %v, want %v", tt.pattern, tt.name, got, tt.want)
		}
	}
}

// decision runs the full policy for a host (a name, or "" to use the
// address as a literal) at an address, and returns the refusal reason, ""
// when allowed.
func decision(p *TargetPolicy, host, addr string, port int) string {
	name := normalizeName(host)
	if host == "" {
		host = addr
	}
	err := p.check(host, name, netip.MustParseAddr(addr), port)
	var denied *TargetDeniedError
	switch {
	case err == nil:
		return ""
	case errors.As(err, &denied) && errors.Is(err, ErrTargetDenied):
		return denied.Reason
	default:
		return "unexpected error: " + err.Error()
	}
}

func testPolicy(t testing.TB, allow, deny string) *TargetPolicy {
	t.Helper()
	return NewTargetPolicy(mustRules(t, allow), mustRules(t, deny), nil)
}

type policyCase struct {
	allow, deny string
	host        string // name as given; "" means addr is the literal
	addr        string
	port        int
	want        string // refusal reason, "" for allowed
}

func runPolicyCases(t *testing.T, tests []policyCase) {
	t.Helper()
	for _, tt := range tests {
		name := "allow=" + tt.allow + " deny=" + tt.deny + " " + tt.host + "@" + tt.addr + ":" + strconv.Itoa(tt.port)
		t.Run(name, func(t *testing.T) {
			p := testPolicy(t, tt.allow, tt.deny)
			if got := decision(p, tt.host, tt.addr, tt.port); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestTargetPolicyRules(t *testing.T) {
	runPolicyCases(t, []policyCase{
		{"", "", "h.example.com", "192.0.2.1", 22, ""},
		{"", "", "", "127.0.0.1", 22, ""},
		{"", "192.0.2.0/24", "", "192.0.2.1", 22, reasonDenied},
		{"", "192.0.2.0/24", "h.example.com", "192.0.2.1", 22, reasonDenied},
		{"", "192.0.2.0/24", "", "192.0.3.1", 22, ""},
		{"", "192.0.2.0/24:22", "", "192.0.2.1", 22, reasonDenied},
		{"", "192.0.2.0/24:22", "", "192.0.2.1", 2222, ""},
		{"", "192.0.2.0/24:2200-2299", "", "192.0.2.1", 2200, reasonDenied},
		{"", "192.0.2.0/24:2200-2299", "", "192.0.2.1", 2299, reasonDenied},
		{"", "192.0.2.0/24:2200-2299", "", "192.0.2.1", 2199, ""},
		{"", "192.0.2.0/24:2200-2299", "", "192.0.2.1", 2300, ""},
		{"10.0.0.0/8", "", "", "10.1.1.1", 22, ""},
		{"10.0.0.0/8", "", "h.example.com", "10.1.1.1", 22, ""},
		{"10.0.0.0/8", "", "", "192.0.2.1", 22, reasonNotAllowed},
		{"10.0.0.0/8", "10.9.0.0/16", "", "10.9.1.1", 22, reasonDenied},
		{"10.0.0.0/8", "10.9.0.0/16", "", "10.8.1.1", 22, ""},
		{"10.0.0.0/8:22", "", "", "10.1.1.1", 23, reasonNotAllowed},
		// Name rules compare the name as given, whatever it resolves to.
		{"*.lab.example.com", "", "a.lab.example.com", "192.0.2.1", 22, ""},
		{"*.lab.example.com", "", "A.LAB.Example.COM.", "192.0.2.1", 22, ""},
		{"*.lab.example.com", "", "a.b.lab.example.com", "192.0.2.1", 22, ""},
		{"*.lab.example.com", "", "lab.example.com", "192.0.2.1", 22, reasonNotAllowed},
		{"*.lab.example.com", "", "a.lab.example.com.evil.net", "192.0.2.1", 22, reasonNotAllowed},
		{"*", "", "", "192.0.2.1", 22, reasonNotAllowed}, // names never match literals
		{"db?.example.com", "", "db1.example.com", "192.0.2.1", 22, ""},
		{"db?.example.com", "", "db12.example.com", "192.0.2.1", 22, reasonNotAllowed},
		{"host.example.com:22", "", "host.example.com", "192.0.2.1", 22, ""},
		{"host.example.com:22", "", "host.example.com", "192.0.2.1", 23, reasonNotAllowed},
		// Deny wins, whether the rules are names or ranges.
		{"10.0.0.0/8", "*.corp.example.com", "x.corp.example.com", "10.0.0.1", 22, reasonDenied},
		{"*.lab.example.com", "10.0.0.0/8", "a.lab.example.com", "10.0.0.1", 22, reasonDenied},
		{"*.lab.example.com", "*.lab.example.com:22", "a.lab.example.com", "10.0.0.1", 22, reasonDenied},
		{"*.lab.example.com", "*.lab.example.com:22", "a.lab.example.com", "10.0.0.1", 2222, ""},
		// IPv6, and IPv4-mapped forms read as IPv4.
		{"[2001:db8::/32]:22", "", "", "2001:db8::5", 22, ""},
		{"[2001:db8::/32]:22", "", "", "2001:db9::5", 22, reasonNotAllowed},
		{"", "10.0.0.0/8", "", "::ffff:10.0.0.1", 22, reasonDenied},
		{"", "::ffff:10.0.0.0/104", "", "10.0.0.1", 22, reasonDenied},
		{"", "::/0", "", "192.0.2.1", 22, ""}, // IPv6 ranges hold no IPv4
		{"", "::/0", "", "2001:db8::1", 22, reasonDenied},
		// Unspecified addresses reach the gateway itself: never allowed.
		{"", "", "", "0.0.0.0", 22, reasonUnspecified},
		{"", "", "", "0.1.2.3", 22, reasonUnspecified},
		{"", "", "", "::", 22, reasonUnspecified},
		{"", "", "", "::ffff:0.0.0.0", 22, reasonUnspecified},
		{"0.0.0.0", "", "", "0.0.0.0", 22, reasonUnspecified},
		{"0.0.0.0/0", "", "any.example.com", "0.0.0.0", 22, reasonUnspecified},
	})
}

func TestTargetPolicySpecialAddresses(t *testing.T) {
	runPolicyCases(t, []policyCase{
		// Denied by default.
		{"", "", "", "169.254.169.254", 22, reasonSpecial},
		{"", "", "", "169.254.1.1", 22, reasonSpecial},
		{"", "", "", "::ffff:169.254.169.254", 22, reasonSpecial},
		{"", "", "", "fe80::1", 22, reasonSpecial},
		{"", "", "", "fd00:ec2::254", 22, reasonSpecial},
		{"", "", "", "100.100.100.200", 22, reasonSpecial},
		{"", "", "", "192.0.0.192", 22, reasonSpecial},
		{"", "", "", "168.63.129.16", 22, reasonSpecial},
		{"", "", "metadata.example.com", "169.254.169.254", 22, reasonSpecial},
		{"", "", "", "100.100.100.201", 22, ""},
		{"", "", "", "fd00:ec2::253", 22, ""},
		// Broad ranges and names do not count as explicit.
		{"0.0.0.0/0", "", "", "169.254.169.254", 22, reasonSpecial},
		{"128.0.0.0/1", "", "", "169.254.169.254", 22, reasonSpecial},
		{"169.0.0.0/8", "", "", "169.254.169.254", 22, reasonSpecial},
		{"100.64.0.0/10", "", "", "100.100.100.200", 22, reasonSpecial},
		{"metadata.example.com", "", "metadata.example.com", "169.254.169.254", 22, reasonSpecial},
		{"*", "", "metadata.example.com", "169.254.169.254", 22, reasonSpecial},
		{"::/0", "", "", "fe80::1", 22, reasonSpecial},
		{"fe80::/9", "", "", "fe80::1", 22, reasonSpecial},
		{"fd00::/8", "", "", "fd00:ec2::254", 22, reasonSpecial},
		// Explicit allows.
		{"169.254.0.0/16", "", "", "169.254.169.254", 22, ""},
		{"169.254.169.254", "", "", "169.254.169.254", 22, ""},
		{"::ffff:169.254.169.254", "", "", "::ffff:169.254.169.254", 22, ""},
		{"169.254.169.254", "", "metadata.example.com", "169.254.169.254", 22, ""},
		{"169.254.169.254:80", "", "", "169.254.169.254", 80, ""},
		{"169.254.169.254:80", "", "", "169.254.169.254", 22, reasonSpecial},
		{"169.254.169.254", "", "", "10.0.0.1", 22, reasonNotAllowed},
		{"fe80::/10", "", "", "fe80::1", 22, ""},
		{"fd00:ec2::/32", "", "", "fd00:ec2::254", 22, ""},
		{"100.100.0.0/16", "", "", "100.100.100.200", 22, ""},
		// Deny still wins over an explicit allow.
		{"169.254.169.254", "169.254.0.0/16", "", "169.254.169.254", 22, reasonDenied},
	})
}

func TestTargetPolicyCheckLiteral(t *testing.T) {
	tests := []struct {
		allow, deny string
		host        string
		port        int
		want        string
	}{
		{"", "", "192.0.2.1", 22, ""},
		{"", "", "169.254.169.254", 22, reasonSpecial},
		{"", "", "::ffff:169.254.169.254", 22, reasonSpecial},
		{"", "", "[fe80::1]", 22, reasonSpecial},
		{"", "", "fe80::1%eth0", 22, reasonSpecial},
		{"fe80::/10", "", "fe80::1%eth0", 22, ""},
		{"", "", "0.0.0.0", 22, reasonUnspecified},
		{"", "", "[::]", 22, reasonUnspecified},
		{"", "", "", 22, reasonUnspecified},
		{"", "", "host.example.com", 22, ""},
		{"", "10.0.0.0/8", "10.1.1.1", 22, reasonDenied},
		{"", "[2001:db8::/32]:22", "[2001:db8::7]", 22, reasonDenied},
		{"", "10.0.0.0/8", "ten.example.com", 22, ""}, // decided at dial time
		{"", "*.corp.example.com", "A.Corp.Example.COM.", 22, reasonDenied},
		{"", "*.corp.example.com", "corp.example.com", 22, ""},
		{"", "*.corp.example.com:22", "a.corp.example.com", 2222, ""},
		{"10.0.0.0/8", "", "lab.example.com", 22, ""}, // may resolve into 10/8
		{"10.0.0.0/8", "", "10.0.0.1", 22, ""},
		{"10.0.0.0/8", "", "192.0.2.1", 22, reasonNotAllowed},
		{"10.0.0.0/8:22", "", "lab.example.com", 22, ""},
		{"10.0.0.0/8:22", "", "lab.example.com", 2222, reasonNotAllowed},
		{"*.lab.example.com", "", "x.lab.example.com", 22, ""},
		{"*.lab.example.com", "", "x.other.example.com", 22, reasonNotAllowed},
		{"*.lab.example.com", "", "10.0.0.1", 22, reasonNotAllowed},
		{"*.lab.example.com", "bad.lab.example.com", "bad.lab.example.com", 22, reasonDenied},
	}
	for _, tt := range tests {
		name := "allow=" + tt.allow + " deny=" + tt.deny + " " + tt.host + ":" + strconv.Itoa(tt.port)
		t.Run(name, func(t *testing.T) {
			err := testPolicy(t, tt.allow, tt.deny).CheckLiteral(tt.host, tt.port)
			var got string
			var denied *TargetDeniedError
			switch {
			case err == nil:
			case errors.As(err, &denied) && errors.Is(err, ErrTargetDenied):
				got = denied.Reason
				if msg := err.Error(); !strings.Contains(msg, strings.Trim(tt.host, "[]")) || !strings.Contains(msg, got) {
					t.Errorf("got message %q, want one naming %q and saying %q", msg, tt.host, got)
				}
			default:
				t.Fatalf("got error %v, want a *TargetDeniedError or nil", err)
			}
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestTargetDeniedErrorRule(t *testing.T) {
	err := testPolicy(t, "", "10.0.0.0/8:22, *.corp.example.com").CheckLiteral("10.1.1.1", 22)
	var denied *TargetDeniedError
	if !errors.As(err, &denied) {
		t.Fatalf("got %v, want a *TargetDeniedError", err)
	}
	if denied.Rule != "10.0.0.0/8:22" {
		t.Errorf("got rule %q, want %q", denied.Rule, "10.0.0.0/8:22")
	}
	if strings.Contains(err.Error(), "10.0.0.0/8") {
		t.Errorf("got message %q, want one that does not reveal the rule", err)
	}
}

// fakeDNS answers lookups from a map and counts them.
type fakeDNS struct {
	mu      sync.Mutex
	answers map[string][]string
	lookups int
}

func (d *fakeDNS) lookup(_ context.Context, network, host string) ([]netip.Addr, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.lookups++
	answer, ok := d.answers[normalizeName(host)]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	addrs := []netip.Addr{}
	for _, s := range answer {
		a := netip.MustParseAddr(s)
		if network == "ip4" && !a.Unmap().Is4() || network == "ip6" && !a.Is6() {
			continue
		}
		addrs = append(addrs, a)
	}
	return addrs, nil
}

// dialRecorder stands in for the network: it records each dial and fails
// for the addresses in fail.
type dialRecorder struct {
	mu        sync.Mutex
	fail      map[string]bool
	addrs     []string
	deadlines []time.Duration // time left on each dial's ctx; 0 when none
}

func (r *dialRecorder) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.addrs = append(r.addrs, addr)
	var left time.Duration
	if d, ok := ctx.Deadline(); ok {
		left = time.Until(d)
	}
	r.deadlines = append(r.deadlines, left)
	if r.fail[addr] {
		to := net.TCPAddrFromAddrPort(netip.MustParseAddrPort(addr))
		return nil, &net.OpError{Op: "dial", Net: network, Addr: to, Err: syscall.ECONNREFUSED}
	}
	c1, c2 := net.Pipe()
	c2.Close()
	return c1, nil
}

func (r *dialRecorder) dialed() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.addrs)
}

// reset forgets the dials so far and returns the time each one had.
func (r *dialRecorder) reset() []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	deadlines := r.deadlines
	r.addrs, r.deadlines = nil, nil
	return deadlines
}

func TestTargetPolicyDialRefusesResolved(t *testing.T) {
	dns := &fakeDNS{answers: map[string][]string{
		"metadata.test":  {"169.254.169.254"},
		"mapped.test":    {"::ffff:169.254.169.254"},
		"linklocal.test": {"fe80::1"},
		"zero.test":      {"0.0.0.0"},
		"internal.test":  {"10.0.0.1", "10.0.0.2"},
		"mixed.test":     {"10.0.0.1", "169.254.169.254"},
		"x.corp.test":    {"192.0.2.1"},
		"outside.test":   {"192.0.2.1"},
	}}
	tests := []struct {
		allow, deny string
		addr        string
		wantAddr    string // the refused address named in the error; "" for a refused name
		wantReason  string
	}{
		{"", "", "metadata.test:22", "169.254.169.254", reasonSpecial},
		{"", "", "mapped.test:22", "169.254.169.254", reasonSpecial},
		{"", "", "linklocal.test:22", "fe80::1", reasonSpecial},
		{"", "", "zero.test:22", "0.0.0.0", reasonUnspecified},
		{"", "10.0.0.0/8", "internal.test:22", "10.0.0.1", reasonDenied},
		{"", "10.0.0.0/8", "mixed.test:22", "10.0.0.1", reasonDenied},
		{"*.test", "", "metadata.test:22", "169.254.169.254", reasonSpecial},
		{"", "*.corp.test", "x.corp.test:22", "192.0.2.1", reasonDenied},
		{"10.0.0.0/8", "", "outside.test:22", "192.0.2.1", reasonNotAllowed},
		{"", "", "169.254.169.254:22", "169.254.169.254", reasonSpecial},
		{"", "", "[::ffff:169.254.169.254]:22", "169.254.169.254", reasonSpecial},
		{"", "", ":22", "", reasonUnspecified},
	}
	for _, tt := range tests {
		t.Run("allow="+tt.allow+" deny="+tt.deny+" "+tt.addr, func(t *testing.T) {
			p := testPolicy(t, tt.allow, tt.deny)
			rec := &dialRecorder{}
			p.lookup, p.dial = dns.lookup, rec.dial
			conn, err := p.DialContext(t.Context(), "tcp", tt.addr)
			if conn != nil {
				conn.Close()
			}
			if got := rec.dialed(); len(got) > 0 {
				t.Errorf("got dials to %q, want none", got)
			}
			var denied *TargetDeniedError
			if !errors.As(err, &denied) || !errors.Is(err, ErrTargetDenied) {
				t.Fatalf("got error %v, want a *TargetDeniedError", err)
			}
			var gotAddr string
			if denied.Addr.IsValid() {
				gotAddr = denied.Addr.String()
			}
			if gotAddr != tt.wantAddr || denied.Reason != tt.wantReason {
				t.Errorf("got %q refused (%s), want %q refused (%s)", gotAddr, denied.Reason, tt.wantAddr, tt.wantReason)
			}
			host, _, _ := net.SplitHostPort(tt.addr)
			if msg := err.Error(); !strings.Contains(msg, host) || !strings.Contains(msg, tt.wantAddr) {
				t.Errorf("got message %q, want one naming %q and %q", msg, host, tt.wantAddr)
			}
		})
	}
}

func listen(t *testing.T, addr string) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// acceptOne returns the next connection ln accepts, waiting at most 5s.
func acceptOne(t *testing.T, ln net.Listener) net.Conn {
	t.Helper()
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(5 * time.Second))
	c, err := ln.Accept()
	if err != nil {
		t.Fatalf("accept on %s: %v", ln.Addr(), err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// requireNoConnection fails if anything connected to ln before now: it
// connects a probe and checks that the probe is the first connection ln
// accepts. A completed connect is queued before the dial returns, so no
// waiting is needed.
func requireNoConnection(t *testing.T, ln net.Listener) {
	t.Helper()
	probe, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("probe %s: %v", ln.Addr(), err)
	}
	defer probe.Close()
	got := acceptOne(t, ln)
	if got.RemoteAddr().String() != probe.LocalAddr().String() {
		t.Errorf("got a connection from %s on %s, want none before the probe from %s",
			got.RemoteAddr(), ln.Addr(), probe.LocalAddr())
	}
}

func TestTargetPolicyDialNeverReachesDenied(t *testing.T) {
	ln := listen(t, "127.0.0.1:0")
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	p := testPolicy(t, "", "127.0.0.0/8")
	dns := &fakeDNS{answers: map[string][]string{"denied.test": {"127.0.0.1"}}}
	p.lookup = dns.lookup
	for _, addr := range []string{"denied.test:" + port, "127.0.0.1:" + port, "[::ffff:127.0.0.1]:" + port} {
		conn, err := p.DialContext(t.Context(), "tcp", addr)
		if conn != nil {
			conn.Close()
		}
		if !errors.Is(err, ErrTargetDenied) {
			t.Errorf("DialContext(%q): got error %v, want ErrTargetDenied", addr, err)
		}
	}
	requireNoConnection(t, ln)
}

// checkArrival checks that conn is the connection ln received.
func checkArrival(t *testing.T, conn net.Conn, ln net.Listener) {
	t.Helper()
	if got, want := conn.RemoteAddr().String(), ln.Addr().String(); got != want {
		t.Errorf("got a connection to %s, want %s", got, want)
	}
	got := acceptOne(t, ln)
	if got.RemoteAddr().String() != conn.LocalAddr().String() {
		t.Errorf("got a connection from %s on %s, want the one from %s", got.RemoteAddr(), ln.Addr(), conn.LocalAddr())
	}
}

func TestTargetPolicyDialSkipsDeniedAddress(t *testing.T) {
	good := listen(t, "127.0.0.1:0")
	port := strconv.Itoa(good.Addr().(*net.TCPAddr).Port)
	// A listener on the denied address too, where the platform allows it,
	// so a dial that went there would be seen.
	bad, err := net.Listen("tcp", "127.0.0.2:"+port)
	if err != nil {
		t.Logf("no listener on 127.0.0.2 (%v); checking only the allowed side", err)
	} else {
		t.Cleanup(func() { bad.Close() })
	}
	p := testPolicy(t, "", "127.0.0.2/32")
	dns := &fakeDNS{answers: map[string][]string{"good.test": {"127.0.0.2", "127.0.0.1"}}}
	p.lookup = dns.lookup
	conn, err := p.DialContext(t.Context(), "tcp", "good.test:"+port)
	if err != nil {
		t.Fatalf("got error %v, want a connection to 127.0.0.1", err)
	}
	defer conn.Close()
	checkArrival(t, conn, good)
	if bad != nil {
		requireNoConnection(t, bad)
	}
}

func TestTargetPolicyDialOneLookup(t *testing.T) {
	ln := listen(t, "127.0.0.1:0")
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	p := testPolicy(t, "", "127.0.0.2/32")
	// A rebinding resolver: allowed on the first answer, denied after.
	var mu sync.Mutex
	lookups := 0
	p.lookup = func(_ context.Context, _, host string) ([]netip.Addr, error) {
		mu.Lock()
		defer mu.Unlock()
		lookups++
		if lookups == 1 {
			return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
		}
		return []netip.Addr{netip.MustParseAddr("127.0.0.2")}, nil
	}
	conn, err := p.DialContext(t.Context(), "tcp", "rebind.test:"+port)
	if err != nil {
		t.Fatalf("got error %v, want a connection to 127.0.0.1", err)
	}
	defer conn.Close()
	mu.Lock()
	got := lookups
	mu.Unlock()
	if got != 1 {
		t.Errorf("got %d lookups, want 1", got)
	}
	checkArrival(t, conn, ln)
}

func TestTargetPolicyDialOrder(t *testing.T) {
	dns := &fakeDNS{answers: map[string][]string{
		"two.test":    {"192.0.2.1", "192.0.2.2"},
		"dual.test":   {"192.0.2.1", "2001:db8::1"},
		"mapped.test": {"::ffff:192.0.2.9"},
		"v6.test":     {"2001:db8::1"},
	}}
	tests := []struct {
		network, addr string
		fail          []string
		wantDials     []string
		wantErr       bool
	}{
		{"tcp", "two.test:22", nil, []string{"192.0.2.1:22"}, false},
		{"tcp", "two.test:22", []string{"192.0.2.1:22"}, []string{"192.0.2.1:22", "192.0.2.2:22"}, false},
		{"tcp", "two.test:22", []string{"192.0.2.1:22", "192.0.2.2:22"}, []string{"192.0.2.1:22", "192.0.2.2:22"}, true},
		{"tcp", "dual.test:22", []string{"192.0.2.1:22"}, []string{"192.0.2.1:22", "[2001:db8::1]:22"}, false},
		{"tcp6", "dual.test:22", nil, []string{"[2001:db8::1]:22"}, false},
		{"tcp4", "dual.test:22", nil, []string{"192.0.2.1:22"}, false},
		{"tcp4", "v6.test:22", nil, nil, true},
		{"tcp4", "[2001:db8::1]:22", nil, nil, true},
		{"tcp6", "192.0.2.1:22", nil, nil, true},
		{"tcp", "mapped.test:22", nil, []string{"192.0.2.9:22"}, false},
		{"tcp", "[fe80::1%lo]:22", nil, []string{"[fe80::1%lo]:22"}, false},
		{"udp", "two.test:22", nil, nil, true},
		{"tcp", "two.test", nil, nil, true},
		{"tcp", "two.test:0", nil, nil, true},
		{"tcp", "nowhere.test:22", nil, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.network+" "+tt.addr+" fail="+strings.Join(tt.fail, ","), func(t *testing.T) {
			p := testPolicy(t, "0.0.0.0/0, ::/0, fe80::/10", "")
			rec := &dialRecorder{fail: map[string]bool{}}
			for _, a := range tt.fail {
				rec.fail[a] = true
			}
			p.lookup, p.dial = dns.lookup, rec.dial
			conn, err := p.DialContext(t.Context(), tt.network, tt.addr)
			if conn != nil {
				conn.Close()
			}
			if got := rec.dialed(); !slices.Equal(got, tt.wantDials) {
				t.Errorf("got dials %q, want %q", got, tt.wantDials)
			}
			if (err != nil) != tt.wantErr {
				t.Errorf("got error %v, want an error: %v", err, tt.wantErr)
			}
			if errors.Is(err, ErrTargetDenied) {
				t.Errorf("got %v, want an error that is not a policy refusal", err)
			}
			if len(tt.fail) > 0 && err != nil {
				// The first failure explains best, as with net.Dial.
				var opErr *net.OpError
				if !errors.As(err, &opErr) || opErr.Addr.String() != tt.fail[0] || !errors.Is(err, syscall.ECONNREFUSED) {
					t.Errorf("got %v, want the first dial error (%s: connection refused)", err, tt.fail[0])
				}
			}
		})
	}
}

func TestTargetPolicyDialErrorsUnchanged(t *testing.T) {
	ln := listen(t, "127.0.0.1:0")
	closed := ln.Addr().String()
	ln.Close()
	p := testPolicy(t, "", "")
	dns := &fakeDNS{answers: map[string][]string{"empty.test": {}, "closed.test": {"127.0.0.1"}}}
	p.lookup = dns.lookup
	_, port, _ := net.SplitHostPort(closed)

	_, err := p.DialContext(t.Context(), "tcp", closed)
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("dial %s: got %v, want connection refused", closed, err)
	}
	_, err = p.DialContext(t.Context(), "tcp", "closed.test:"+port)
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("dial closed.test: got %v, want connection refused", err)
	}
	for _, host := range []string{"missing.test", "empty.test"} {
		_, err = p.DialContext(t.Context(), "tcp", host+":22")
		var dnsErr *net.DNSError
		if !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
			t.Errorf("dial %s: got %v, want a not-found *net.DNSError", host, err)
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = p.DialContext(ctx, "tcp", closed)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("dial with a cancelled ctx: got %v, want context.Canceled", err)
	}
}

func TestTargetPolicyDialSharesDeadline(t *testing.T) {
	p := testPolicy(t, "", "")
	dns := &fakeDNS{answers: map[string][]string{
		"four.test": {"192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"},
	}}
	rec := &dialRecorder{fail: map[string]bool{"192.0.2.1:22": true, "192.0.2.2:22": true, "192.0.2.3:22": true}}
	p.lookup, p.dial = dns.lookup, rec.dial
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	conn, err := p.DialContext(ctx, "tcp", "four.test:22")
	if err != nil {
		t.Fatalf("got error %v, want a connection", err)
	}
	conn.Close()
	// 20s over 4 addresses: the first gets about 5s, the last all that is left.
	deadlines := rec.reset()
	if first := deadlines[0]; first > 5*time.Second || first < 4*time.Second {
		t.Errorf("got %v for the first of 4 addresses, want about 5s", first)
	}
	if last := deadlines[3]; last < 19*time.Second {
		t.Errorf("got %v for the last address, want the rest of 20s", last)
	}

	conn, err = p.DialContext(t.Context(), "tcp", "four.test:22")
	if err != nil {
		t.Fatalf("got error %v, want a connection", err)
	}
	conn.Close()
	if got := rec.reset()[0]; got != 0 {
		t.Errorf("got a %v deadline without one on ctx, want none", got)
	}
}

func TestTargetPolicyUsesResolver(t *testing.T) {
	var mu sync.Mutex
	queries := 0
	r := &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, address string) (net.Conn, error) {
			mu.Lock()
			queries++
			mu.Unlock()
			return nil, errors.New("no DNS in tests")
		},
	}
	p := NewTargetPolicy(nil, nil, r)
	_, err := p.DialContext(t.Context(), "tcp", "resolver-wired.test:22")
	var dnsErr *net.DNSError
	if !errors.As(err, &dnsErr) {
		t.Errorf("got %v, want a *net.DNSError", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if queries == 0 {
		t.Error("got no queries through the given resolver, want at least one")
	}
}

func TestTargetPolicyZeroValue(t *testing.T) {
	var p TargetPolicy
	if err := p.CheckLiteral("192.0.2.1", 22); err != nil {
		t.Errorf("got %v, want nil", err)
	}
	if err := p.CheckLiteral("169.254.169.254", 22); !errors.Is(err, ErrTargetDenied) {
		t.Errorf("got %v, want ErrTargetDenied", err)
	}
}

func FuzzParseTargetRules(f *testing.F) {
	for _, s := range []string{
		"",
		"10.0.0.0/8",
		"192.0.2.7, 2001:db8::1",
		"10.0.0.0/8:22,[2001:db8::/32]:22,[2001:db8::1]:22",
		"*.lab.example.com:2200-2299,host.example.com:22,db?.example.com",
		"::ffff:10.0.0.0/104,::ffff:192.0.2.7",
		"[192.0.2.7]:22,[10.0.0.0/8]",
		" , ,*",
		"[2001:db8::1",
		"host:2299-2200",
		"fe80::1%eth0",
		"10.0.0.*",
		"a..b",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		rules, err := ParseTargetRules(s)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "server: target rule ") {
				t.Fatalf("got error %q, want one naming the rule", err)
			}
			return
		}
		formatted := strings.Join(ruleStrings(rules), ",")
		again, err := ParseTargetRules(formatted)
		if err != nil {
			t.Fatalf("ParseTargetRules(%q) (from %q): %v", formatted, s, err)
		}
		if !slices.Equal(again, rules) {
			t.Fatalf("got %q after a round trip, want %q", ruleStrings(again), ruleStrings(rules))
		}
		for _, r := range rules {
			if r == (TargetRule{}) {
				t.Fatalf("got an empty rule from %q", s)
			}
		}
		// Deciding with the rules must not panic, whatever the host.
		p := NewTargetPolicy(rules, nil, nil)
		_ = p.CheckLiteral(s, 22)
		_ = NewTargetPolicy(nil, rules, nil).CheckLiteral(s, 22)
	})
}

// FuzzTargetPattern checks matchPattern against a regular expression.
func FuzzTargetPattern(f *testing.F) {
	f.Add("*.lab.example.com", "a.b.lab.example.com")
	f.Add("db?.example.com", "db1.example.com")
	f.Add("a*b*c", "aXbYbZc")
	f.Add("*a*a*b", "aaaaaa")
	f.Add("**?", "")
	f.Fuzz(func(t *testing.T, pattern, name string) {
		for _, s := range []string{pattern, name} {
			for i := 0; i < len(s); i++ {
				if s[i] >= 0x80 {
					return // the regexp would compare runes, not bytes
				}
			}
		}
		var re strings.Builder
		re.WriteString("(?s)^")
		for i := 0; i < len(pattern); i++ {
			switch pattern[i] {
			case '*':
				re.WriteString(".*")
			case '?':
				re.WriteString(".")
			default:
				re.WriteString(regexp.QuoteMeta(pattern[i : i+1]))
			}
		}
		re.WriteString("$")
		want := regexp.MustCompile(re.String()).MatchString(name)
		if got := matchPattern(pattern, name); got != want {
			t.Errorf("matchPattern(%q, %q): got %v, want %v", pattern, name, got, want)
		}
	})
}
