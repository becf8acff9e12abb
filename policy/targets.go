package policy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// ErrTargetDenied is wrapped by every refusal of the target policy; the
// concrete error is a *TargetDeniedError.
var ErrTargetDenied = errors.New("target not allowed")

// Reasons a TargetDeniedError gives; each is written for the user.
const (
	reasonUnspecified = "unspecified address"
	reasonSpecial     = "link-local or cloud metadata address"
	reasonDenied      = "denied by the gateway's target rules"
	reasonNotAllowed  = "not among the gateway's allowed targets"
)

// TargetDeniedError says which target the policy refused and why. Its
// message is written for the user and never names the operator's rules.
type TargetDeniedError struct {
	// Host is the host as the user gave it.
	Host string
	// Addr is the refused address; it is invalid when the host name itself
	// was refused.
	Addr netip.Addr
	// Port is the target port.
	Port int
	// Reason is the user-facing explanation.
	Reason string
	// Rule is the deny rule that matched, for the operator's logs; empty
	// when no deny rule was involved.
	Rule string
}

// Error returns the message for the user: the target, the refused
// address when it came from a name, the port and the reason.
func (e *TargetDeniedError) Error() string {
	subject := e.Host
	if e.Addr.IsValid() && !isLiteral(e.Host) {
		subject += " (" + e.Addr.String() + ")"
	}
	return fmt.Sprintf("%v: %s port %d: %s", ErrTargetDenied, subject, e.Port, e.Reason)
}

// Unwrap makes errors.Is(err, ErrTargetDenied) true.
func (e *TargetDeniedError) Unwrap() error { return ErrTargetDenied }

// TargetRule is one parsed allow or deny rule: an address range or a host
// name pattern, with an optional port range. The zero TargetRule matches
// nothing.
type TargetRule struct {
	prefix  netip.Prefix // valid for address rules
	pattern string       // lower case, no trailing dot; set for name rules
	portLo  uint16       // 0 with portHi 0: any port
	portHi  uint16
}

// String returns the rule in the syntax ParseTargetRules reads.
func (r TargetRule) String() string {
	var host string
	switch {
	case r.prefix.IsValid() && r.prefix.IsSingleIP():
		host = r.prefix.Addr().String()
	case r.prefix.IsValid():
		host = r.prefix.String()
	default:
		host = r.pattern
	}
	switch {
	case r.portLo == 0:
		return host
	case r.prefix.IsValid() && r.prefix.Addr().Is6():
		host = "[" + host + "]"
	}
	if r.portLo == r.portHi {
		return host + ":" + strconv.Itoa(int(r.portLo))
	}
	return fmt.Sprintf("%s:%d-%d", host, r.portLo, r.portHi)
}

// ParseTargetRules parses comma-separated rules, as given to
// --allow-targets and --deny-targets. A rule is
//
//   - an address range in CIDR notation: "10.0.0.0/8", "2001:db8::/32";
//   - a single address: "192.0.2.7", "2001:db8::1";
//   - a host name pattern: "host.example.com", "*.lab.example.com",
//     "db?.example.com", where "*" matches any run of characters, dots
//     included, and "?" exactly one character, as in ssh_config; matching
//     ignores case and trailing dots;
//
// optionally followed by ":PORT" or ":LOW-HIGH" (a rule without a port
// matches every port). An IPv6 address or range with a port is written in
// brackets: "[2001:db8::/32]:22". IPv4-mapped IPv6 forms are read as IPv4.
// Empty items and surrounding spaces are ignored. Errors name the bad rule.
func ParseTargetRules(s string) ([]TargetRule, error) {
	var rules []TargetRule
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		r, err := parseTargetRule(item)
		if err != nil {
			return nil, fmt.Errorf("server: target rule %q: %w", item, err)
		}
		rules = append(rules, r)
	}
	return rules, nil
}

func parseTargetRule(s string) (TargetRule, error) {
	host, ports, bracketed := s, "", false
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return TargetRule{}, errors.New("missing ]")
		}
		host, bracketed = s[1:end], true
		switch rest := s[end+1:]; {
		case rest == "":
		case rest[0] == ':':
			ports = rest[1:]
			if ports == "" {
				return TargetRule{}, errors.New(`missing port after ":"`)
			}
		default:
			return TargetRule{}, errors.New(`unexpected text after "]"`)
		}
	} else if strings.Count(s, ":") == 1 {
		host, ports, _ = strings.Cut(s, ":")
		if ports == "" {
			return TargetRule{}, errors.New(`missing port after ":"`)
		}
	}
	var r TargetRule
	if ports != "" {
		var err error
		if r.portLo, r.portHi, err = parsePortRange(ports); err != nil {
			return TargetRule{}, err
		}
	}
	switch {
	case host == "":
		return TargetRule{}, errors.New("missing address or host name")
	case strings.Contains(host, "/"):
		p, err := netip.ParsePrefix(host)
		if err != nil {
			return TargetRule{}, errors.New("not a valid CIDR range")
		}
		r.prefix = unmapPrefix(p.Masked())
	case strings.Contains(host, ":") || bracketed:
		a, err := netip.ParseAddr(host)
		if err != nil {
			return TargetRule{}, errors.New("not a valid IP address (an IPv6 address with a port is written [addr]:port)")
		}
		if a.Zone() != "" {
			return TargetRule{}, errors.New("IPv6 zones are not supported in rules")
		}
		r.prefix = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
	default:
		if a, err := netip.ParseAddr(host); err == nil {
			r.prefix = netip.PrefixFrom(a, a.BitLen())
			break
		}
		pattern := strings.ToLower(strings.TrimRight(host, "."))
		if err := checkPattern(pattern); err != nil {
			return TargetRule{}, err
		}
		r.pattern = pattern
	}
	return r, nil
}

// unmapPrefix turns an IPv4-mapped IPv6 range (::ffff:0:0/96 or longer)
// into the IPv4 range it covers, since addresses are unmapped before
// matching.
func unmapPrefix(p netip.Prefix) netip.Prefix {
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p
}

func parsePortRange(s string) (lo, hi uint16, err error) {
	a, b, isRange := strings.Cut(s, "-")
	if lo, err = parsePort(a); err != nil {
		return 0, 0, err
	}
	if !isRange {
		return lo, lo, nil
	}
	if hi, err = parsePort(b); err != nil {
		return 0, 0, err
	}
	if lo > hi {
		return 0, 0, fmt.Errorf("port range %d-%d is reversed", lo, hi)
	}
	return lo, hi, nil
}

func parsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("port %q is not a number between 1 and 65535", s)
	}
	return uint16(n), nil
}

// checkPattern validates a lower-cased host name pattern.
func checkPattern(p string) error {
	if p == "" {
		return errors.New("missing host name")
	}
	if len(p) > 253 {
		return errors.New("host name pattern is too long")
	}
	ipLike := true
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c >= 'a' && c <= 'z', c == '-', c == '_':
			ipLike = false
		case c >= '0' && c <= '9', c == '*', c == '?', c == '.':
		default:
			return fmt.Errorf("invalid character %q in host name pattern", c)
		}
	}
	if strings.HasPrefix(p, ".") || strings.Contains(p, "..") {
		return errors.New("empty label in host name pattern")
	}
	if ipLike && strings.ContainsAny(p, "0123456789") {
		// "10.0.0.*" or "10.1" would only ever be compared with host
		// names, never with addresses: almost certainly a mistake.
		return errors.New("looks like an IP address pattern; write a CIDR range such as 10.0.0.0/24")
	}
	return nil
}

// matchPattern reports whether name matches pattern, where "*" matches
// any run of bytes and "?" exactly one. Both are lower case.
func matchPattern(pattern, name string) bool {
	p, n := 0, 0
	star, starN := -1, 0
	for n < len(name) {
		switch {
		case p < len(pattern) && pattern[p] == '*':
			star, starN = p, n
			p++
		case p < len(pattern) && (pattern[p] == '?' || pattern[p] == name[n]):
			p++
			n++
		case star >= 0:
			// Let the last star swallow one more byte and retry.
			starN++
			p, n = star+1, starN
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

func (r TargetRule) portMatches(port int) bool {
	return r.portLo == 0 || int(r.portLo) <= port && port <= int(r.portHi)
}

// matches reports whether the rule covers the target: name is the
// normalized host name as given ("" for an address literal), ip the
// unmapped address (invalid when not known yet).
func (r TargetRule) matches(name string, ip netip.Addr, port int) bool {
	if !r.portMatches(port) {
		return false
	}
	if r.prefix.IsValid() {
		return ip.IsValid() && r.prefix.Contains(ip)
	}
	return name != "" && r.pattern != "" && matchPattern(r.pattern, name)
}

// specialPrefixes are denied unless an allow rule names them explicitly:
// link-local ranges and the cloud metadata services reachable from a VM.
var specialPrefixes = []netip.Prefix{
	netip.MustParsePrefix("169.254.0.0/16"),     // IPv4 link-local, incl. 169.254.169.254 (AWS, GCP, Azure, ...)
	netip.MustParsePrefix("fe80::/10"),          // IPv6 link-local
	netip.MustParsePrefix("fd00:ec2::254/128"),  // AWS metadata over IPv6
	netip.MustParsePrefix("100.100.100.200/32"), // Alibaba Cloud metadata
	netip.MustParsePrefix("192.0.0.192/32"),     // Oracle Cloud metadata
	netip.MustParsePrefix("168.63.129.16/32"),   // Azure WireServer
}

// unspecifiedPrefixes are always denied: connecting to them reaches the
// gateway's own host.
var unspecifiedPrefixes = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("::/128"),
}

// Minimum prefix lengths for an allow rule to count as explicitly naming a
// link-local or metadata address: 0.0.0.0/0 or ::/0 do not.
const (
	explicitBits4 = 16
	explicitBits6 = 10
)

func inAny(prefixes []netip.Prefix, ip netip.Addr) bool {
	for _, p := range prefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// TargetPolicy decides which SSH targets the gateway may connect to, from
// allow and deny rules:
//
//   - the unspecified addresses (0.0.0.0/8, ::) are always refused;
//   - a target matching a deny rule is refused: deny wins over allow;
//   - link-local (169.254.0.0/16, fe80::/10) and cloud metadata addresses
//     (169.254.169.254, fd00:ec2::254, 100.100.100.200, 192.0.0.192,
//     168.63.129.16) are refused unless an allow rule names them
//     explicitly: an address rule containing the address whose prefix is
//     at least /16 for IPv4 or /10 for IPv6 (169.254.169.254/32 and
//     169.254.0.0/16 count; 0.0.0.0/0 and name rules do not);
//   - with no allow rules everything else is allowed; otherwise the target
//     must match an allow rule.
//
// Address rules are compared with the resolved address, IPv4-mapped IPv6
// addresses unmapped; name rules with the host name as the user gave it,
// never with an address literal. So a name rule can admit a host whose
// address no rule denies, and a deny range holds whatever name points
// into it; a deny name rule only refuses that spelling of the target (its
// address or another name still reach it), so keep users off a machine by
// denying its addresses.
//
// The zero TargetPolicy has no rules and uses net.DefaultResolver. A
// TargetPolicy is immutable and safe for concurrent use.
type TargetPolicy struct {
	allow, deny []TargetRule
	// lookup resolves host names; nil means net.DefaultResolver.
	lookup func(ctx context.Context, network, host string) ([]netip.Addr, error)
	// dial opens connections; nil means a net.Dialer. Tests replace it.
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// NewTargetPolicy returns a policy with the given rules that resolves
// names with resolver (nil means net.DefaultResolver).
func NewTargetPolicy(allow, deny []TargetRule, resolver *net.Resolver) *TargetPolicy {
	if resolver == nil {
		resolver = net.DefaultResolver
	}
	return &TargetPolicy{
		allow:  append([]TargetRule(nil), allow...),
		deny:   append([]TargetRule(nil), deny...),
		lookup: resolver.LookupNetIP,
	}
}

// check applies the full policy to a target whose address is known. name
// is the normalized host name as given, "" for a literal.
func (p *TargetPolicy) check(host, name string, ip netip.Addr, port int) error {
	ip = ip.Unmap().WithZone("")
	refuse := func(reason, rule string) error {
		return &TargetDeniedError{Host: host, Addr: ip, Port: port, Reason: reason, Rule: rule}
	}
	if inAny(unspecifiedPrefixes, ip) {
		return refuse(reasonUnspecified, "")
	}
	for _, r := range p.deny {
		if r.matches(name, ip, port) {
			return refuse(reasonDenied, r.String())
		}
	}
	if inAny(specialPrefixes, ip) {
		for _, r := range p.allow {
			if r.prefix.IsValid() && r.prefix.Bits() >= explicitBits(ip) && r.matches("", ip, port) {
				return nil
			}
		}
		return refuse(reasonSpecial, "")
	}
	if len(p.allow) == 0 {
		return nil
	}
	for _, r := range p.allow {
		if r.matches(name, ip, port) {
			return nil
		}
	}
	return refuse(reasonNotAllowed, "")
}

func explicitBits(ip netip.Addr) int {
	if ip.Is4() {
		return explicitBits4
	}
	return explicitBits6
}

// CheckLiteral is the check at credential creation, before anything is
// resolved. An address literal (IPv6 optionally in brackets) gets the full
// policy. A host name gets only what can be decided from the name: a
// matching deny name rule refuses it, and with allow rules it is refused
// when no allow name rule matches and no allow address rule covers the
// port; otherwise the decision waits for DialContext, which checks the
// resolved addresses. Refusals are *TargetDeniedError values wrapping
// ErrTargetDenied.
func (p *TargetPolicy) CheckLiteral(host string, port int) error {
	host = trimBrackets(host)
	if ip, err := netip.ParseAddr(host); err == nil {
		return p.check(host, "", ip, port)
	}
	name := normalizeName(host)
	refuse := func(reason, rule string) error {
		return &TargetDeniedError{Host: host, Port: port, Reason: reason, Rule: rule}
	}
	if name == "" {
		return refuse(reasonUnspecified, "")
	}
	for _, r := range p.deny {
		if r.matches(name, netip.Addr{}, port) {
			return refuse(reasonDenied, r.String())
		}
	}
	if len(p.allow) == 0 {
		return nil
	}
	for _, r := range p.allow {
		if r.matches(name, netip.Addr{}, port) || r.prefix.IsValid() && r.portMatches(port) {
			return nil
		}
	}
	return refuse(reasonNotAllowed, "")
}

// minDialSlice is the least time one address gets when a deadline is
// shared between several, as in package net.
const minDialSlice = 2 * time.Second

// DialContext connects to addr ("host:port") for sshbridge.Config.Dialer.
// It resolves the host once, checks every address, and dials the allowed
// ones in order, exactly as resolved, until one connects: the name is
// never looked up again, so DNS cannot answer differently for the dial
// than for the check. When ctx has a deadline it is shared between the
// remaining addresses (at least 2s each), so one unresponsive address does
// not use up all of it.
//
// If no address is allowed the error is a *TargetDeniedError naming the
// host and the first refused address. Lookup and connection errors
// (*net.DNSError, connection refused, timeouts) are returned unchanged so
// callers can classify them.
func (p *TargetPolicy) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var ipNetwork string
	switch network {
	case "tcp":
		ipNetwork = "ip"
	case "tcp4":
		ipNetwork = "ip4"
	case "tcp6":
		ipNetwork = "ip6"
	default:
		return nil, fmt.Errorf("server: dial %s: unsupported network %q", addr, network)
	}
	host, portText, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("server: dial %s: %w", addr, err)
	}
	port, err := parsePort(portText)
	if err != nil {
		return nil, fmt.Errorf("server: dial %s: %w", addr, err)
	}
	if normalizeName(host) == "" {
		// net.Dial would read an empty host as the local system.
		return nil, &TargetDeniedError{Host: host, Port: int(port), Reason: reasonUnspecified}
	}
	ips, name, err := p.resolve(ctx, ipNetwork, host)
	if err != nil {
		return nil, err
	}
	var allowed []netip.Addr
	var denied error
	for _, ip := range ips {
		if ipNetwork == "ip4" && !ip.Is4() || ipNetwork == "ip6" && !ip.Is6() {
			continue
		}
		if err := p.check(host, name, ip, int(port)); err != nil {
			if denied == nil {
				denied = err
			}
			continue
		}
		allowed = append(allowed, ip)
	}
	if len(allowed) == 0 {
		if denied != nil {
			return nil, denied
		}
		return nil, &net.AddrError{Err: "no suitable address found", Addr: host}
	}
	dial := p.dial
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	var firstErr error
	for i, ip := range allowed {
		dctx, cancel := shareDeadline(ctx, len(allowed)-i)
		conn, err := dial(dctx, network, netip.AddrPortFrom(ip, port).String())
		cancel()
		if err == nil {
			return conn, nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	return nil, firstErr
}

// resolve returns the addresses to check for host, unmapped, with a single
// lookup for a name, and the normalized name ("" for a literal).
func (p *TargetPolicy) resolve(ctx context.Context, network, host string) ([]netip.Addr, string, error) {
	if ip, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{ip.Unmap()}, "", nil
	}
	lookup := p.lookup
	if lookup == nil {
		lookup = net.DefaultResolver.LookupNetIP
	}
	ips, err := lookup(ctx, network, host)
	if err != nil {
		return nil, "", err
	}
	if len(ips) == 0 {
		return nil, "", &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	unmapped := make([]netip.Addr, len(ips))
	for i, ip := range ips {
		unmapped[i] = ip.Unmap()
	}
	return unmapped, normalizeName(host), nil
}

// shareDeadline gives one of n remaining dial attempts its share of ctx's
// deadline.
func shareDeadline(ctx context.Context, n int) (context.Context, context.CancelFunc) {
	deadline, ok := ctx.Deadline()
	if !ok || n <= 1 {
		return ctx, func() {}
	}
	left := time.Until(deadline)
	slice := max(left/time.Duration(n), min(minDialSlice, left))
	return context.WithTimeout(ctx, slice)
}

func trimBrackets(host string) string {
	if len(host) > 2 && host[0] == '[' && host[len(host)-1] == ']' {
		return host[1 : len(host)-1]
	}
	return host
}

// normalizeName lower-cases a host name and drops trailing dots.
func normalizeName(host string) string {
	return strings.ToLower(strings.TrimRight(host, "."))
}

// isLiteral reports whether host is an address literal, bracketed or not.
func isLiteral(host string) bool {
	_, err := netip.ParseAddr(trimBrackets(host))
	return err == nil
}
