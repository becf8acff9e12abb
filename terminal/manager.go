package terminal

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alfresco-ssh/alfresco-ssh/sshbridge"
)

// Credentials hands out stored credentials, each once. An error that
// wraps credstore.ErrUnavailable means the store could not be reached;
// any other, that the credentials are unknown, expired or used.
type Credentials interface {
	Take(ctx context.Context, id string) (sshbridge.Target, error)
}

// Admit is asked before each dial, with the dial's context (cancelled
// when the terminal stops): it applies the login back-off, and refuses with an error that Text explains to the user.
// Otherwise dialed, if not nil, is called once with the dial's outcome
// (nil: logged in). (The session limits are Config.Connect's.)
type Admit func(ctx context.Context, client string, target sshbridge.Target) (dialed func(error), err error)

// Observer is told about terminals: Started when a shell is up, Failed
// when a start-session did not get one, Ended when a started terminal
// ends; Info.Reason says why. Metrics and audit are observers. Calls come
// from the terminal's owner goroutine: they must be quick and must not
// call back into the Manager.
type Observer interface {
	Started(Info)
	Failed(Info)
	Ended(Info)
}

// Info describes a terminal, for observers and Manager.List. It never
// holds a secret: no password, key, token or credentials id.
type Info struct {
	ID      string    // the terminal's id on this node (Manager.Kill)
	Client  string    // the browser's address
	Target  string    // host:port, once start-session named one
	User    string    // the SSH user
	Auth    string    // "password", "keyboard-interactive" or "publickey", once logged in
	HostKey string    // the host key's SHA256 fingerprint, once logged in
	Started time.Time // when the shell came up; zero before
	// Connect is how long the SSH dial took (TCP, handshake, login, PTY
	// and shell), once it ended.
	Connect time.Duration
	// BytesIn and BytesOut count terminal input and output.
	BytesIn, BytesOut uint64
	// Active is the last input, output or file transfer (Touch).
	Active time.Time
	State  State
	// Reason is set for Failed and Ended.
	Reason Reason
}

// Config configures a Manager. Credentials is required; a nil Admit
// admits every dial.
type Config struct {
	// SSH configures the dial.
	SSH         sshbridge.Config
	Credentials Credentials
	Admit       Admit
	// IdleTimeout ends a terminal with no input and no output for this
	// long (0: never). MaxSessionDuration ends every terminal after that
	// long (0: never).
	IdleTimeout, MaxSessionDuration time.Duration
	// OutputHead and OutputTail are the client's framing around the
	// payload object of an ssh-output message ({"output": ...}); packets
	// are built with them in one pass, so output is copied once.
	OutputHead, OutputTail string
	// BinaryHead is the client's framing before the payload object of a
	// binary ssh-output message (StartOptions.Binary), whose "output" is
	// the placeholder of its one attachment; OutputTail ends it too.
	// BinaryMin is the least output read at once that goes as bytes
	// (default DefaultBinaryMin).
	BinaryHead string
	BinaryMin  int
	// FilesTokens gives every running terminal a files token, sent in
	// connection-ready and looked up by FilesTerminal.
	FilesTokens bool
	// ResumeWindow keeps the session of a client that opted in to resume
	// (StartResumable) for this long after the client went away; 0 turns
	// resume off. ResumeBuffer bounds the bytes of output such a session
	// keeps unacknowledged before it stops reading the SSH channel
	// (default DefaultResumeBuffer).
	ResumeWindow time.Duration
	ResumeBuffer int
	// Observers are told about every terminal.
	Observers []Observer
	// Connect, when set, is asked by Open for every new client: it counts
	// the client's terminal against the session limits from its first
	// moment, and refuses it with an error that Text explains (the client
	// gets it as its closing message at once). release, if not nil, runs
	// when the terminal ends. A refused client that left a resumable
	// session detached is let in to resume it (resume.go, borrow).
	Connect func(client string) (release func(), err error)
	// ClientKey, when set, is the key of a client address in the limits
	// (say, an IPv6 address cut to its /64): a refused client is let in
	// to resume a session detached by any address of the same key. Nil:
	// the address itself.
	ClientKey func(client string) string
	// StartTimeout ends a terminal that got no start-session this long
	// after Open (ErrStartTimeout), so that a client that never sends one
	// holds nothing for long (0: no limit). A dial that has begun is
	// bounded by SSH.Timeout instead.
	StartTimeout time.Duration
	// Logger receives the Manager's logs when Open is given none; nil
	// discards them.
	Logger *slog.Logger
}

// Manager is the registry of this node's terminals. It is safe for
// concurrent use.
type Manager struct {
	cfg      Config
	output   atomic.Uint64 // bytes of terminal output, all terminals
	capacity capacityLog
	input    atomic.Uint64 // bytes of terminal input, all terminals

	// Packet framing, from cfg: before and after the escaped output, and
	// the whole header of a binary message (its capacity is its length,
	// so that numbering it copies).
	head, tail, binHead []byte

	mu       sync.Mutex
	closed   bool // Shutdown: no new terminals
	draining bool // Drain: no new sessions
	byID     map[string]*Terminal
	byFiles  map[[sha256.Size]byte]*Terminal
	// byResume and byCredentials find resumable terminals by the hash of
	// their resume token and of their credentials id (resume.go).
	byResume      map[[sha256.Size]byte]*Terminal
	byCredentials map[[sha256.Size]byte]*Terminal
	// detached counts the detached resumable terminals by the key
	// (Config.ClientKey) of the client that left them, and borrowers the
	// Waiting terminals of a key that got no slot from Config.Connect
	// (resume.go).
	detached, borrowers map[string]int
	empty               chan struct{} // closed while byID is empty
}

// NewManager returns a Manager.
func NewManager(cfg Config) *Manager {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.BinaryMin <= 0 {
		cfg.BinaryMin = DefaultBinaryMin
	}
	if cfg.SSH.KeepaliveCount <= 0 {
		cfg.SSH.KeepaliveCount = 3
	}
	empty := make(chan struct{})
	close(empty)
	return &Manager{
		cfg:           cfg,
		head:          []byte(cfg.OutputHead + `{"output":"`),
		tail:          []byte(`"}` + cfg.OutputTail),
		binHead:       slices.Clip([]byte(cfg.BinaryHead + `{"output":{"_placeholder":true,"num":0}}` + cfg.OutputTail)),
		byID:          make(map[string]*Terminal),
		byFiles:       make(map[[sha256.Size]byte]*Terminal),
		byResume:      make(map[[sha256.Size]byte]*Terminal),
		byCredentials: make(map[[sha256.Size]byte]*Terminal),
		detached:      make(map[string]int),
		borrowers:     make(map[string]int),
		empty:         empty,
	}
}

// Open registers a new client (a browser connected) and returns its
// terminal, in state Waiting. After Shutdown the client gets the closing
// message at once and the terminal is Ended. log, if not nil, carries the
// client's attributes for the terminal's logs.
func (m *Manager) Open(c Client, clientAddr string, log *slog.Logger) *Terminal {
	if log == nil {
		log = m.cfg.Logger
	}
	t := newTerminal(m, c, clientAddr, log)
	var refused error
	if m.cfg.Connect != nil {
		t.slot, refused = m.cfg.Connect(clientAddr)
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		if t.slot != nil {
			t.slot()
		}
		t.refuse(ErrShutdown)
		return t
	}
	if refused != nil && !m.borrow(t, refused) {
		m.mu.Unlock()
		t.refuse(refused)
		return t
	}
	if len(m.byID) == 0 {
		m.empty = make(chan struct{})
	}
	m.byID[t.id] = t
	m.mu.Unlock()
	if d := m.cfg.StartTimeout; d > 0 {
		t.startTimer = time.AfterFunc(d, func() { t.post(event{kind: evStartTimeout}) })
	}
	go t.run()
	return t
}

// clientKey is the key of the client at addr (Config.ClientKey).
func (m *Manager) clientKey(addr string) string {
	if m.cfg.ClientKey == nil {
		return addr
	}
	return m.cfg.ClientKey(addr)
}

// mayStart reports whether a terminal may start a session.
func (m *Manager) mayStart() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return !m.draining
}

// forget removes an ended terminal.
func (m *Manager) forget(t *Terminal) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.byID, t.id)
	if t.filesKey != nil {
		delete(m.byFiles, *t.filesKey)
	}
	m.forgetResume(t)
	if t.borrowed != nil {
		count(m.borrowers, m.clientKey(t.addr), -1)
	}
	if len(m.byID) == 0 {
		close(m.empty)
	}
}

// newFilesToken registers t under a new files token and returns it.
func (m *Manager) newFilesToken(t *Terminal) string {
	return m.newToken(m.byFiles, &t.filesKey, t) // on a resume, the old token goes
}

// newToken registers t in tokens under a new token, in place of the one
// whose hash *key holds (guarded by m.mu), and returns it. Tokens are
// kept and looked up by their SHA-256.
func (m *Manager) newToken(tokens map[[sha256.Size]byte]*Terminal, key **[sha256.Size]byte, t *Terminal) string {
	token := randomString(32)
	hash := sha256.Sum256([]byte(token))
	m.mu.Lock()
	defer m.mu.Unlock()
	if *key != nil {
		delete(tokens, **key)
	}
	tokens[hash] = t
	*key = &hash
	return token
}

// FilesTerminal returns the running terminal whose files token is token.
// Tokens are kept and looked up by their SHA-256, so the lookup's timing
// says nothing about a token (as a constant-time compare would not either).
func (m *Manager) FilesTerminal(token string) (*Terminal, bool) {
	key := sha256.Sum256([]byte(token))
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.byFiles[key]
	return t, ok
}

// Get returns the terminal with the id.
func (m *Manager) Get(id string) (*Terminal, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.byID[id]
	return t, ok
}

// List describes every terminal that is not Ended.
func (m *Manager) List() []Info {
	ts := m.all()
	infos := make([]Info, 0, len(ts))
	for _, t := range ts {
		infos = append(infos, t.Info())
	}
	return infos
}

func (m *Manager) all() []*Terminal {
	m.mu.Lock()
	defer m.mu.Unlock()
	ts := make([]*Terminal, 0, len(m.byID))
	for _, t := range m.byID {
		ts = append(ts, t)
	}
	return ts
}

// Kill ends the terminal with the id; its user reads that an
// administrator ended it. It reports whether the terminal was found.
func (m *Manager) Kill(id string) bool {
	t, ok := m.Get(id)
	if ok {
		t.Stop(ErrKilled)
	}
	return ok
}

// Notice shows text, as a yellow line, in every running terminal (a drain
// tells users how long they have).
func (m *Manager) Notice(text string) {
	for _, t := range m.all() {
		t.post(event{kind: evNotice, text: text})
	}
}

// Drain refuses new sessions from now on: a start-session gets the
// shutdown closing message. Live terminals run on.
func (m *Manager) Drain() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.draining = true
}

// Wait returns once no terminal is left, or with ctx's error.
func (m *Manager) Wait(ctx context.Context) error {
	m.mu.Lock()
	empty := m.empty
	m.mu.Unlock()
	select {
	case <-empty:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Shutdown refuses new terminals, ends every live one with ErrShutdown
// (each gets its closing message) and waits until they are gone, or
// returns ctx's error.
func (m *Manager) Shutdown(ctx context.Context) error {
	m.mu.Lock()
	m.closed, m.draining = true, true
	m.mu.Unlock()
	for _, t := range m.all() {
		t.Stop(ErrShutdown)
	}
	return m.Wait(ctx)
}

// OutputBytes returns the bytes of terminal output relayed so far.
func (m *Manager) OutputBytes() uint64 { return m.output.Load() }

// InputBytes returns the bytes of terminal input relayed so far.
func (m *Manager) InputBytes() uint64 { return m.input.Load() }

// randomID returns 128 random bits, URL-safe.
func randomID() string { return randomString(16) }

// randomString is n random bytes, base64url: a secret when n is 32.
func randomString(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
