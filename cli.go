package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime/debug"
	"strings"
	"time"
)

// The command line's machinery: every flag can also come from the
// environment, --help lists both with the defaults, and a bad value is
// reported in one line that says what form it should take. Flags are
// defined in parseFlags, one line each.

// envPrefix starts the environment variable of every flag:
// --credentials-ttl is ALFRESCO_SSH_CREDENTIALS_TTL.
const envPrefix = "ALFRESCO_SSH_"

// noEnv lists the flags that only the command line sets.
var noEnv = map[string]bool{"version": true}

// version is stamped at build time with -ldflags "-X main.version=v1.2.3";
// when it is not, buildVersion falls back on the build information.
var version string

// envName is the environment variable of a flag, or "" for none.
func envName(flagName string) string {
	if noEnv[flagName] {
		return ""
	}
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// usageError is a mistake on the command line or in the environment; main
// prints it with a pointer to --help.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Sprintf(format, args...)}
}

// checkFlags makes every flag of fs report a bad value, from the command
// line or the environment, as "<where>=<value>: want <form>". The returned
// function gives the message of the last bad command-line value, if any.
func checkFlags(fs *flag.FlagSet) (lastBad func() string) {
	var bad string
	fs.VisitAll(func(f *flag.Flag) {
		f.Value = &checkedValue{Value: f.Value, name: f.Name, bad: &bad}
	})
	return func() string { return bad }
}

// checkedValue wraps a flag's value to explain a bad one.
type checkedValue struct {
	flag.Value
	name string
	bad  *string
}

func (v *checkedValue) Set(s string) error {
	err := v.Value.Set(s)
	if err != nil {
		*v.bad = fmt.Sprintf("--%s=%s: %s", v.name, quoteIfNeeded(s), wantForm(v.Value, err))
	}
	return err
}

// IsBoolFlag lets a wrapped boolean flag go without a value (--debug).
func (v *checkedValue) IsBoolFlag() bool {
	b, ok := v.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// wantForm says what form a value of v must take; err is what v's own Set
// said.
func wantForm(v flag.Value, err error) string {
	g, ok := v.(flag.Getter)
	if !ok {
		return err.Error()
	}
	switch g.Get().(type) {
	case time.Duration:
		return "want a duration such as 90s or 2m"
	case bool:
		return "want true or false"
	case int, int64:
		return "want a whole number"
	case uint, uint64:
		return "want a whole number, 0 or more"
	case float64:
		return "want a number"
	}
	return err.Error()
}

func quoteIfNeeded(s string) string {
	if s == "" || strings.ContainsAny(s, " \t\r\n\"'\\") {
		return fmt.Sprintf("%q", s)
	}
	return s
}

// setFromEnv sets every flag whose environment variable is set. The
// command line, parsed afterwards, wins.
func setFromEnv(fs *flag.FlagSet, getenv func(string) string) error {
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		name := envName(f.Name)
		if name == "" || err != nil {
			return
		}
		if v := getenv(name); v != "" {
			if serr := f.Value.Set(v); serr != nil {
				err = usagef("%s=%s: %s", name, quoteIfNeeded(v), wantForm(unwrap(f.Value), serr))
			}
		}
	})
	return err
}

func unwrap(v flag.Value) flag.Value {
	if c, ok := v.(*checkedValue); ok {
		return c.Value
	}
	return v
}

// printHelp writes --help: each flag with its environment variable and
// default, then the settings only the environment holds.
func printHelp(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprint(w, `Usage: alfresco-ssh [flags]

A web SSH gateway: a browser terminal (xterm.js) talks Socket.IO to this
server, which holds the SSH connection.

Every flag can also be set with the environment variable shown; the command
line wins.

`)
	fs.VisitAll(func(f *flag.Flag) {
		kind, usage := flag.UnquoteUsage(&flag.Flag{Usage: f.Usage, Value: unwrap(f.Value)})
		fmt.Fprintf(w, "  --%s", f.Name)
		if kind != "" {
			fmt.Fprintf(w, " %s", kind)
		}
		var notes []string
		if env := envName(f.Name); env != "" {
			notes = append(notes, env)
		}
		if d := defaultText(f); d != "" {
			notes = append(notes, "default "+d)
		}
		if len(notes) > 0 {
			fmt.Fprintf(w, "  (%s)", strings.Join(notes, ", "))
		}
		fmt.Fprintln(w)
		wrap(w, usage, "      ", 80)
	})
	fmt.Fprint(w, `
Environment only:
  CREDENTIALS_KEY
      Fernet key (URL-safe base64 of 32 bytes) that seals the stored
      credentials; processes that share it can use each other's
      credentials. Default: a random key per process. A malformed key stops
      start-up.
`)
}

// defaultText is a flag's default as a person writes it ("2m", not
// "2m0s"), or "" when there is none to show.
func defaultText(f *flag.Flag) string {
	d := f.DefValue
	if d == "" || d == "false" {
		return ""
	}
	if g, ok := unwrap(f.Value).(flag.Getter); ok {
		if _, isDuration := g.Get().(time.Duration); isDuration {
			if m, ok := strings.CutSuffix(d, "m0s"); ok {
				d = m + "m"
			}
			if h, ok := strings.CutSuffix(d, "h0m"); ok {
				d = h + "h"
			}
		}
	}
	if strings.ContainsAny(d, " \"") {
		d = fmt.Sprintf("%q", d)
	}
	return d
}

// wrap writes text in lines of at most width columns, each after indent.
func wrap(w io.Writer, text, indent string, width int) {
	line := indent
	for _, word := range strings.Fields(text) {
		if len(line) > len(indent) && len(line)+1+len(word) > width {
			fmt.Fprintln(w, line)
			line = indent
		}
		if len(line) > len(indent) {
			line += " "
		}
		line += word
	}
	if len(line) > len(indent) {
		fmt.Fprintln(w, line)
	}
}

// buildVersion is the version this binary reports: the one stamped with
// -ldflags, else the module version (go install ...@v1.2.3), else "dev"
// with the VCS revision it was built from.
func buildVersion() string {
	info, _ := debug.ReadBuildInfo()
	return versionOf(version, info)
}

func versionOf(stamped string, info *debug.BuildInfo) string {
	if stamped != "" {
		return stamped
	}
	if info == nil {
		return "dev"
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, dirty string
	for _, s := range info.Settings {
		switch {
		case s.Key == "vcs.revision":
			rev = s.Value
		case s.Key == "vcs.modified" && s.Value == "true":
			dirty = "-dirty"
		}
	}
	if rev == "" {
		return "dev"
	}
	return "dev-" + truncate(rev, 12) + dirty
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// errorExit prints err for a person and returns the exit status: 2 for a
// usage mistake (with a pointer to --help), 1 otherwise.
func errorExit(err error, stderr io.Writer) int {
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "alfresco-ssh: %s (see --help)\n", ue.msg)
		return 2
	}
	fmt.Fprintln(stderr, "alfresco-ssh:", err)
	return 1
}
