// terminal.js drives the alfresco-ssh terminal page: an xterm.js terminal
// talking to the gateway over Socket.IO (namespace /ssh). The wire contract is
// PROTOCOL.md (both generations, and the Resume and Embedding API
// extensions this page uses). Plain browser JS, no build step; the vendored
// UMD bundles loaded before this file provide the globals Terminal,
// FitAddon, WebLinksAddon, SearchAddon, Unicode11Addon and io.
//
// For other scripts of the page (files.js) it sets window.alfresco:
//   state       "connecting", "ready" (input flows), "reconnecting" (the
//               connection dropped; resuming) or "ended" (final)
//   filesToken  the files_token of connection-ready, or ""
//   events      an EventTarget: "ready" (detail {filesToken, resumed}) each
//               time the session becomes ready, also after a resume;
//               "ended" (detail {reason}) once, when it is over
//   term, socket, fitAddon, searchAddon, config (the server's settings)
(function () {
  "use strict";

  // No user input and no output for this long ends the session (the stock
  // Flask page used 10 minutes). Both keystrokes and terminal output count as
  // activity, so a long-running command that keeps printing (tail -f, a build)
  // is not cut off while the user watches it.
  const INACTIVITY_TIMEOUT_MS = 600000;
  const RESIZE_DEBOUNCE_MS = 150;
  // Failed attempts to reach the gateway before giving up, for a session
  // not started yet. The credentials are only consumed by start-session,
  // so a reload can still succeed.
  const MAX_CONNECT_ATTEMPTS = 3;

  // A paste goes out in ordered ssh-input messages of at most this many
  // bytes (UTF-8), far below the server's limit on one message.
  const MAX_INPUT_BYTES = 65536;
  // Input is held back while this much is on its way; the page then looks
  // again after INPUT_PUMP_MS.
  const INPUT_HIGH_WATER = 1 << 20;
  const INPUT_PUMP_MS = 10;

  // Resume: acknowledge what the terminal has shown after this much output,
  // or this long after output arrived, whichever comes first.
  const ACK_BYTES = 65536;
  const ACK_INTERVAL_MS = 1000;
  // How long the gateway keeps a session whose page is gone, unless the
  // server's page configuration says otherwise (--resume-window).
  const DEFAULT_RESUME_WINDOW_MS = 60000;
  // After a resume that lost the screen (a reload), the PTY is made one
  // row smaller, then restored, so that full-screen programs redraw. The
  // restore waits for the program's answer: the first output at least
  // NUDGE_SETTLE_MS after the nudge (earlier output is the replay), or
  // NUDGE_MAX_MS at most.
  const NUDGE_SETTLE_MS = 200;
  const NUDGE_MAX_MS = 1000;

  const RED = "\x1b[91m";
  const RESET = "\x1b[0m";
  const HIDE_CURSOR = "\x1b[?25l";
  const ANSI_SEQUENCE = /\x1b\[[0-9;?]*[A-Za-z]/g;

  const ENDED_WHILE_DISCONNECTED = "The session ended while the page was disconnected.";
  const CONNECTION_LOST = "Connection to the gateway lost.";
  const CANNOT_CONNECT = "Could not connect to the gateway. Reload the page to try again.";

  // The xterm.js default colours (its Tango palette), spelled out so that
  // an ended terminal can be dimmed from them.
  const DARK_THEME = {
    foreground: "#ffffff", background: "#000000", cursor: "#ffffff",
    black: "#2e3436", red: "#cc0000", green: "#4e9a06", yellow: "#c4a000",
    blue: "#3465a4", magenta: "#75507b", cyan: "#06989a", white: "#d3d7cf",
    brightBlack: "#555753", brightRed: "#ef2929", brightGreen: "#8ae234", brightYellow: "#fce94f",
    brightBlue: "#729fcf", brightMagenta: "#ad7fa8", brightCyan: "#34e2e2", brightWhite: "#eeeeec",
  };
  // ?theme=light: dark text on white, colours that stay legible on it.
  const LIGHT_THEME = {
    foreground: "#1e1e1e", background: "#ffffff", cursor: "#1e1e1e", cursorAccent: "#ffffff",
    selectionBackground: "#add6ff",
    black: "#000000", red: "#cd3131", green: "#107c10", yellow: "#949800",
    blue: "#0451a5", magenta: "#bc05bc", cyan: "#0598bc", white: "#555555",
    brightBlack: "#666666", brightRed: "#cd3131", brightGreen: "#14ce14", brightYellow: "#b5ba00",
    brightBlue: "#0451a5", brightMagenta: "#bc05bc", brightCyan: "#0598bc", brightWhite: "#a5a5a5",
  };
  // Dimming an ended terminal fades these toward the background. Bright
  // red (SGR 91) stays: it is the colour of the closing message, which
  // must stay readable.
  const DIMMED_COLOURS = ["foreground", "black", "red", "green", "yellow", "blue", "magenta", "cyan", "white",
    "brightBlack", "brightGreen", "brightYellow", "brightBlue", "brightMagenta", "brightCyan", "brightWhite"];
  const MIN_FONT_SIZE = 6;
  const MAX_FONT_SIZE = 72;

  const credentialsId = document.body.dataset.credentialsUuid || "";

  // config holds the server's settings for this page (INTERFACES.md
  // section 1): JSON in the body's data-config attribute. Absent fields, or
  // a template without the attribute, keep the defaults.
  function readConfig() {
    let c = {};
    try {
      c = JSON.parse(document.body.dataset.config || "{}") || {};
    } catch (err) {
      console.warn("alfresco-ssh: ignoring a malformed data-config", err);
    }
    const strings = function (v) {
      return Array.isArray(v) ? v.filter(function (s) { return typeof s === "string"; }) : [];
    };
    const transports = strings(c.transports);
    return {
      // "" or "/prefix": every URL of the gateway starts with it.
      basePath: typeof c.basePath === "string" ? c.basePath.replace(/\/+$/, "") : "",
      transports: transports.length ? transports : ["polling", "websocket"],
      embedOrigins: strings(c.embedOrigins), // parent origins, or ["*"]
      files: c.files === true,
      // Seconds; 0 means the gateway does not keep sessions.
      resumeWindowMs: typeof c.resumeWindow === "number" && c.resumeWindow >= 0
        ? c.resumeWindow * 1000 : DEFAULT_RESUME_WINDOW_MS,
    };
  }
  const config = readConfig();
  const container = document.getElementById("terminal");

  // The page URL may choose a theme and a font size, for embedders that
  // cannot script the frame: ?theme=dark|light&font-size=N.
  const query = new URLSearchParams(location.search);
  let baseTheme = query.get("theme") === "light" ? LIGHT_THEME : DARK_THEME;
  function fontSize(v) {
    const n = Number(v);
    return Number.isFinite(n) && n >= MIN_FONT_SIZE && n <= MAX_FONT_SIZE ? n : 0;
  }

  const term = new Terminal({
    allowProposedApi: true, // term.unicode, for the Unicode 11 widths
    cursorBlink: true,
    theme: baseTheme,
    fontFamily: '"DejaVu Sans Mono", "Cascadia Mono", Menlo, Consolas, "Liberation Mono", "Courier New", monospace',
    fontSize: fontSize(query.get("font-size")) || 15,
    scrollback: 10000,
  });
  document.body.style.background = baseTheme.background;
  const fitAddon = new FitAddon.FitAddon();
  const searchAddon = new SearchAddon.SearchAddon();
  term.loadAddon(fitAddon);
  term.loadAddon(new WebLinksAddon.WebLinksAddon());
  term.loadAddon(searchAddon);
  // Unicode 11 character widths (emoji are two cells), as the remote's
  // wcwidth counts them; the default Unicode 6 tables drift the cursor.
  term.loadAddon(new Unicode11Addon.Unicode11Addon());
  term.unicode.activeVersion = "11";
  term.open(container);
  fitAddon.fit();

  // "Wait..." stays until the session is ready or something is printed.
  let waitShown = true;
  term.write("Wait...");

  // blank stays true until the remote has printed something: a message
  // then starts on the first row.
  let blank = true;

  function clearWait() {
    if (waitShown) {
      waitShown = false;
      // Erase the line through the write queue, so that it is ordered
      // after the "Wait..." write (term.reset() would run before it).
      term.write("\r\x1b[2K");
    }
  }

  // Colours: rgb parses any CSS colour into [r, g, b] (null if it is
  // not one), through a canvas, which needs no document and no CSP.
  const colourParser = document.createElement("canvas").getContext("2d");
  function rgb(colour) {
    colourParser.fillStyle = "#010203";
    colourParser.fillStyle = String(colour);
    const m = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$|^rgba?\((\d+), (\d+), (\d+)/.exec(colourParser.fillStyle);
    if (!m || (colourParser.fillStyle === "#010203" && String(colour).toLowerCase() !== "#010203")) {
      return null;
    }
    return m[1] ? [parseInt(m[1], 16), parseInt(m[2], 16), parseInt(m[3], 16)] : [+m[4], +m[5], +m[6]];
  }
  function hex(c) {
    return "#" + c.map(function (v) { return (256 | Math.round(v)).toString(16).slice(1); }).join("");
  }
  // The 240 colours after the first 16 (6x6x6 cube, 24 greys), as xterm.js
  // computes them.
  function defaultExtendedAnsi() {
    const level = [0, 95, 135, 175, 215, 255];
    const out = [];
    for (let i = 0; i < 216; i++) {
      out.push(hex([level[Math.floor(i / 36)], level[Math.floor(i / 6) % 6], level[i % 6]]));
    }
    for (let i = 0; i < 24; i++) {
      out.push(hex([8 + 10 * i, 8 + 10 * i, 8 + 10 * i]));
    }
    return out;
  }
  // dimmed is theme with its text colours halfway to the background.
  function dimmed(theme) {
    const bg = rgb(theme.background || DARK_THEME.background) || [0, 0, 0];
    const fade = function (colour) {
      const c = rgb(colour);
      return c ? hex(c.map(function (v, i) { return (v + bg[i]) / 2; })) : colour;
    };
    const out = Object.assign({}, theme);
    DIMMED_COLOURS.forEach(function (key) {
      out[key] = fade(theme[key] || DARK_THEME[key]);
    });
    const extended = (theme.extendedAnsi || []).concat(defaultExtendedAnsi().slice((theme.extendedAnsi || []).length));
    out.extendedAnsi = extended.map(fade);
    return out;
  }

  // applyTheme shows the terminal in theme (dimmed once it has ended).
  function applyTheme(theme) {
    baseTheme = theme;
    term.options.theme = alfresco.state === "ended" ? dimmed(theme) : theme;
    document.body.style.background = theme.background || DARK_THEME.background;
  }

  // Resume state. The token is kept in sessionStorage under the
  // credentials id, so that a reload of this tab (and only this tab) can
  // take the session back; with it the name of the node that holds the
  // session, which every connection of a resume sends as the query
  // parameter "node" for the balancer to route it there.
  const storageKey = "alfresco-ssh:" + credentialsId;
  const saved = (function () {
    try {
      const v = JSON.parse(sessionStorage.getItem(storageKey) || "null");
      return v && typeof v.token === "string" && v.token ? v : null;
    } catch (err) {
      return null; // no storage (blocked in a frame, or full): a reload cannot resume
    }
  })();
  let resumeNode = saved && typeof saved.node === "string" ? saved.node : "";

  // The URL names the namespace; the engine's path carries the base path.
  const socket = io("/ssh", {
    path: config.basePath + "/socket.io/",
    transports: config.transports,
    query: resumeNode ? { node: resumeNode } : {},
    reconnectionDelay: 500,
    reconnectionDelayMax: 5000,
  });

  const alfresco = {
    term, socket, fitAddon, searchAddon, config,
    state: "connecting",
    filesToken: "",
    events: new EventTarget(),
  };
  window.alfresco = alfresco;

  function notify(type, detail) {
    alfresco.events.dispatchEvent(new CustomEvent(type, { detail: detail }));
  }

  let started = false; // start-session sent; credentials are single use
  let closingSeen = false; // the server's closing ssh-output arrived
  let everReady = false;
  let failedConnects = 0;
  let lastSize = null; // {cols, rows} last sent to the server
  let inactivityTimer = 0;
  let timeoutSent = false;

  let resumeToken = saved ? saved.token : ""; // the latest, single use
  let shownSeq = 0; // the highest seq written to the terminal
  let parsedSeq = 0; // ... and parsed by it (what is acknowledged)
  let ackedSeq = 0;
  let unackedBytes = 0;
  let ackTimer = 0;
  let resuming = false; // resume-session sent, connection-ready awaited
  let lostScreen = saved !== null; // the next resume replays recent output (seq 0): after a reload, the screen is gone
  let deadline = 0; // when a dropped session can no longer be resumed
  let countdownTimer = 0;
  let nudgedAt = 0; // when the PTY size was nudged, while it is
  let nudgeTimer = 0;

  function saveResume() {
    try {
      if (resumeToken) {
        sessionStorage.setItem(storageKey, JSON.stringify({ token: resumeToken, node: resumeNode }));
      } else {
        sessionStorage.removeItem(storageKey);
      }
    } catch (err) {
      // No storage: see saved.
    }
  }

  // routeTo makes the next connections, and a reload of the page, reach
  // the node named by connection-ready: the engine is made anew, with the
  // manager's query, on each reconnection; the page's own address gets
  // the parameter too, so that the reloaded page comes from that node.
  function routeTo(node) {
    resumeNode = node;
    socket.io.opts.query = node ? { node: node } : {};
    if (!node) {
      return;
    }
    try {
      const url = new URL(location.href);
      if (url.searchParams.get("node") !== node) {
        url.searchParams.set("node", node);
        history.replaceState(history.state, "", url);
      }
    } catch (err) {
      // A frame that may not change its address: a reload lands anywhere.
    }
  }

  function sendResize(force) {
    if (!socket.connected || alfresco.state !== "ready") {
      return;
    }
    const size = { cols: term.cols, rows: term.rows };
    if (!force && lastSize && lastSize.cols === size.cols && lastSize.rows === size.rows) {
      return;
    }
    lastSize = size;
    socket.emit("resize", size);
  }

  // nudgeSize makes full-screen programs (vim, top, htop) redraw after a
  // resume that lost the screen: one row less, then the real size.
  function nudgeSize() {
    if (term.rows < 2) {
      return;
    }
    lastSize = null;
    socket.emit("resize", { cols: term.cols, rows: term.rows - 1 });
    nudgedAt = Date.now();
    nudgeTimer = setTimeout(unnudgeSize, NUDGE_MAX_MS);
  }

  function unnudgeSize() {
    clearTimeout(nudgeTimer);
    nudgedAt = 0;
    sendResize(true);
  }

  // sendInput sends input in order, a large paste in several messages of
  // at most MAX_INPUT_BYTES (a UTF-16 unit is at most three UTF-8 bytes,
  // an ASCII one exactly one). Messages wait in inputQueue while more than
  // INPUT_HIGH_WATER bytes are on their way, so that a huge paste neither
  // freezes the page nor holds the connection's heartbeats behind
  // megabytes; a keystroke with nothing queued goes out at once.
  const inputQueue = [];
  let pumpTimer = 0;

  function sendInput(data) {
    const step = /^[\x00-\x7f]*$/.test(data) ? MAX_INPUT_BYTES : Math.floor(MAX_INPUT_BYTES / 3);
    let start = 0;
    do {
      let stop = Math.min(start + step, data.length);
      const last = data.charCodeAt(stop - 1);
      if (stop < data.length && last >= 0xd800 && last < 0xdc00) {
        stop--; // never split a surrogate pair
      }
      inputQueue.push(data.slice(start, stop));
      start = stop;
    } while (start < data.length);
    pumpInput();
  }

  // inFlight estimates the bytes emitted but not yet sent: the engine's
  // write buffer (packets, counted at their largest) and the WebSocket's
  // own buffer (engine.io-client 6 keeps it as transport.ws).
  function inFlight() {
    const engine = socket.io.engine;
    if (!engine) {
      return 0;
    }
    const ws = engine.transport && engine.transport.ws;
    return (engine.writeBuffer ? engine.writeBuffer.length * MAX_INPUT_BYTES : 0) +
      (ws && typeof ws.bufferedAmount === "number" ? ws.bufferedAmount : 0);
  }

  function pumpInput() {
    clearTimeout(pumpTimer);
    pumpTimer = 0;
    while (inputQueue.length && socket.connected && alfresco.state === "ready" && !resuming) {
      if (inFlight() > INPUT_HIGH_WATER) {
        pumpTimer = setTimeout(pumpInput, INPUT_PUMP_MS);
        return;
      }
      socket.emit("ssh-input", { input: inputQueue.shift() });
    }
  }

  // Acknowledgements: the gateway keeps output until the page says it has
  // shown it (and pauses the remote when too much waits), so the page
  // acknowledges what xterm.js has parsed, not merely received.
  function outputParsed(seq, size) {
    parsedSeq = Math.max(parsedSeq, seq);
    unackedBytes += size;
    if (unackedBytes >= ACK_BYTES) {
      sendAck();
    } else if (!ackTimer) {
      ackTimer = setTimeout(sendAck, ACK_INTERVAL_MS);
    }
  }

  function sendAck() {
    clearTimeout(ackTimer);
    ackTimer = 0;
    if (parsedSeq <= ackedSeq || !socket.connected || alfresco.state !== "ready") {
      return;
    }
    ackedSeq = parsedSeq;
    unackedBytes = 0;
    socket.emit("ssh-ack", { seq: ackedSeq });
  }

  // The "Reconnecting..." overlay, shown over the (unchanged) screen.
  const overlay = document.createElement("div");
  overlay.id = "alfresco-overlay";
  overlay.setAttribute("role", "status");
  overlay.hidden = true;
  document.body.appendChild(overlay);

  function showCountdown() {
    const left = Math.max(0, Math.ceil((deadline - Date.now()) / 1000));
    overlay.textContent = "Reconnecting\u2026 " + left + " s left";
    if (left === 0) {
      end(ENDED_WHILE_DISCONNECTED);
    }
  }

  // reconnect: the connection dropped while the session can be resumed;
  // socket.io-client retries with back-off, and each new connection sends
  // resume-session, until the resume window has passed.
  function reconnect() {
    if (alfresco.state === "reconnecting") {
      return;
    }
    const wasReady = alfresco.state === "ready";
    alfresco.state = "reconnecting";
    resuming = false;
    clearTimeout(inactivityTimer);
    clearTimeout(ackTimer);
    ackTimer = 0;
    if (!deadline) {
      deadline = Date.now() + config.resumeWindowMs;
    }
    socket.sendBuffer.length = 0; // nothing may go out before resume-session
    overlay.hidden = false;
    if (wasReady) {
      post("disconnected");
    }
    countdownTimer = setInterval(showCountdown, 1000);
    showCountdown();
  }

  // end marks the session as over: no more input, no reconnection, and the
  // text on screen stays, dimmed, without a cursor. message, if given, is
  // shown in red; reason is the ending in words for the embedding parent.
  function end(message, reason) {
    if (alfresco.state === "ended") {
      return;
    }
    alfresco.state = "ended";
    clearTimeout(inactivityTimer);
    clearTimeout(ackTimer);
    clearTimeout(nudgeTimer);
    clearInterval(countdownTimer);
    clearTimeout(pumpTimer);
    inputQueue.length = 0;
    overlay.hidden = true;
    resumeToken = "";
    saveResume();
    clearWait();
    if (message) {
      term.write((blank ? "" : "\r\n") + RED + message + RESET + "\r\n");
    }
    term.write(HIDE_CURSOR);
    term.options.cursorBlink = false;
    term.options.disableStdin = true;
    applyTheme(baseTheme); // dimmed
    socket.io.reconnection(false);
    socket.disconnect(); // also stops a pending reconnection attempt
    reason = reason || message || "The session has ended.";
    post("closed", { reason: reason, retryable: retryable(reason) });
    notify("ended", { reason: reason });
  }

  // retryable tells an embedding parent whether a new session might work:
  // not after a normal exit, nor for refusals a new try would meet again.
  function retryable(reason) {
    return !/^Connection closed\.$|authentication failed|host key|policy|private key|handshake/i.test(reason);
  }

  // Inactivity timer, armed while the session is ready.
  function noteActivity() {
    if (alfresco.state !== "ready") {
      return;
    }
    clearTimeout(inactivityTimer);
    inactivityTimer = setTimeout(function () {
      if (alfresco.state === "ready" && !timeoutSent) {
        timeoutSent = true;
        socket.emit("timeout"); // the server answers with the closing message
      }
    }, INACTIVITY_TIMEOUT_MS);
  }

  socket.on("connect", function () {
    failedConnects = 0;
    if (resumeToken) {
      resuming = true;
      socket.emit("resume-session", { resume_token: resumeToken, seq: lostScreen ? 0 : shownSeq });
      return;
    }
    if (started) {
      // A reconnection after a transport drop without a way to resume: the
      // credentials are spent, so a new session cannot be started.
      end(CONNECTION_LOST);
      return;
    }
    started = true;
    alfresco.state = "connecting";
    fitAddon.fit();
    lastSize = { cols: term.cols, rows: term.rows };
    socket.emit("resize", lastSize); // the server opens the PTY at this size
    socket.emit("start-session", { credentials_uuid: credentialsId, resume: true, binary_output: true });
  });

  socket.on("connection-ready", function (data) {
    if (alfresco.state === "ended" || (alfresco.state === "ready" && !resuming)) {
      return;
    }
    data = data || {};
    const resumed = resuming && data.resumed === true;
    const replayed = lostScreen;
    resuming = false;
    lostScreen = false;
    resumeToken = typeof data.resume_token === "string" ? data.resume_token : "";
    routeTo(typeof data.node === "string" ? data.node : "");
    if (typeof data.files_token === "string") {
      alfresco.filesToken = data.files_token;
    }
    if (resumed) {
      ackedSeq = shownSeq; // resume-session said as much
      unackedBytes = 0;
    }
    saveResume();
    clearInterval(countdownTimer);
    deadline = 0;
    overlay.hidden = true;
    clearWait();
    alfresco.state = "ready";
    fitAddon.fit();
    sendResize(true);
    if (resumed && (replayed || data.partial === true)) {
      nudgeSize();
    }
    term.focus();
    noteActivity();
    pumpInput(); // what was typed or pasted before a drop goes on
    if (!everReady) {
      everReady = true;
      post("ready");
    }
    if (resumed) {
      post("resumed");
    }
    notify("ready", { filesToken: alfresco.filesToken, resumed: resumed });
  });

  socket.on("ssh-output", function (data) {
    if (alfresco.state === "ended" || !data) {
      return;
    }
    // Large output comes as bytes (binary_output; xterm.js decodes the
    // UTF-8), small output, notices and the closing message as text, and
    // all output as text from a server without the extension.
    let output = data.output;
    if (output instanceof ArrayBuffer) {
      output = new Uint8Array(output);
    } else if (ArrayBuffer.isView(output)) {
      output = new Uint8Array(output.buffer, output.byteOffset, output.byteLength);
    } else if (typeof output !== "string") {
      return;
    }
    const seq = typeof data.seq === "number" ? data.seq : 0;
    if (seq && seq <= shownSeq) {
      return; // shown already (a replay overlapping what arrived)
    }
    if (Object.prototype.hasOwnProperty.call(data, "timeout")) {
      if (resuming) {
        // The resume was refused: the session is gone.
        end(ENDED_WHILE_DISCONNECTED);
        return;
      }
      // The closing message, already red: keep it on screen and stop.
      closingSeen = true;
      clearWait();
      const text = typeof output === "string" ? output : new TextDecoder().decode(output);
      term.write(blank ? text.replace(/^[\r\n]+/, "") : text);
      end("", text.replace(ANSI_SEQUENCE, "").trim());
      return;
    }
    clearWait();
    if (output.length) {
      blank = false;
    }
    if (seq) {
      shownSeq = seq;
      const size = output.length;
      term.write(output, function () { outputParsed(seq, size); });
    } else {
      term.write(output);
    }
    if (nudgedAt && Date.now() - nudgedAt >= NUDGE_SETTLE_MS) {
      unnudgeSize();
    }
    noteActivity();
  });

  socket.on("disconnect", function (reason) {
    if (alfresco.state === "ended") {
      return; // includes "io client disconnect" caused by end()
    }
    if (reason === "io server disconnect") {
      // The server ends sessions with a closing message first; say something
      // if it did not, rather than leaving the page as it was.
      end(closingSeen ? "" : "The gateway closed the session.");
      return;
    }
    if (resumeToken) {
      reconnect();
      return;
    }
    end(CONNECTION_LOST);
  });

  socket.on("connect_error", function () {
    if (alfresco.state === "ended") {
      return;
    }
    // socket.active is false when the server refused the connection outright
    // (the client will not retry).
    if (!socket.active) {
      end(resumeToken ? ENDED_WHILE_DISCONNECTED : CANNOT_CONNECT);
      return;
    }
    if (resumeToken) {
      reconnect(); // retried until the resume window has passed
      return;
    }
    failedConnects++;
    if (failedConnects >= MAX_CONNECT_ATTEMPTS) {
      end(CANNOT_CONNECT);
    }
  });

  term.onData(function (data) {
    if (alfresco.state !== "ready" || resuming) {
      return;
    }
    sendInput(data);
    noteActivity();
  });

  let title = "";
  term.onTitleChange(function (t) {
    if (t !== title) {
      title = t;
      document.title = t || "alfresco-ssh";
      post("title", { title: t });
    }
  });

  // Resizing: the container follows the viewport; refit after it settles.
  let resizeTimer = 0;
  function refit() {
    fitAddon.fit();
    sendResize(false);
  }
  function scheduleFit() {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(refit, RESIZE_DEBOUNCE_MS);
  }
  window.addEventListener("resize", scheduleFit);
  if (typeof ResizeObserver === "function") {
    new ResizeObserver(scheduleFit).observe(container);
  }

  // The embedding API (PROTOCOL.md, "Embedding API"): with the server's
  // --embed-origins, the page tells its parent frame what happens and takes
  // a few commands from it. Nothing else is ever posted: no token, no
  // credentials id. Without embed origins, or outside a frame, it is off.
  const framed = window.parent !== window;
  const embedAny = config.embedOrigins.indexOf("*") >= 0;

  function embedAllowed(origin) {
    return embedAny || config.embedOrigins.indexOf(origin) >= 0;
  }

  // The parent's origin, where the browser says it (not Firefox).
  const parentOrigin = location.ancestorOrigins && location.ancestorOrigins.length
    ? location.ancestorOrigins[0] : "";

  function post(type, fields) {
    if (!framed || !config.embedOrigins.length) {
      return;
    }
    const message = Object.assign({ source: "alfresco-ssh", type: type }, fields);
    if (parentOrigin) {
      if (embedAllowed(parentOrigin)) {
        window.parent.postMessage(message, parentOrigin);
      }
    } else if (embedAny) {
      window.parent.postMessage(message, "*");
    } else {
      // The browser delivers it only to the origin the parent has.
      config.embedOrigins.forEach(function (origin) {
        window.parent.postMessage(message, origin);
      });
    }
  }

  // sanitizeTheme keeps what an xterm.js ITheme may hold: colour strings,
  // and extendedAnsi, a list of them.
  function sanitizeTheme(theme) {
    const out = {};
    Object.keys(DARK_THEME).concat(["cursorAccent", "selectionBackground", "selectionForeground",
      "selectionInactiveBackground", "scrollbarSliderBackground", "scrollbarSliderHoverBackground",
      "scrollbarSliderActiveBackground", "overviewRulerBorder"]).forEach(function (key) {
      if (typeof theme[key] === "string") {
        out[key] = theme[key];
      }
    });
    if (Array.isArray(theme.extendedAnsi)) {
      out.extendedAnsi = theme.extendedAnsi.filter(function (c) { return typeof c === "string"; });
    }
    // What the parent leaves out is xterm.js's default, as for ITheme.
    return Object.assign({}, DARK_THEME, out);
  }

  window.addEventListener("message", function (event) {
    const m = event.data;
    if (!framed || event.source !== window.parent || !config.embedOrigins.length || !embedAllowed(event.origin) ||
      !m || typeof m !== "object" || m.target !== "alfresco-ssh") {
      return;
    }
    switch (m.type) {
      case "focus":
        term.focus();
        break;
      case "fit":
        refit();
        break;
      case "input":
        if (typeof m.data === "string" && alfresco.state === "ready" && !resuming) {
          sendInput(m.data);
          noteActivity();
        }
        break;
      case "theme":
        if (m.theme && typeof m.theme === "object") {
          applyTheme(sanitizeTheme(m.theme));
        }
        break;
      case "font":
        if (typeof m.family === "string" && m.family) {
          term.options.fontFamily = m.family;
        }
        if (fontSize(m.size)) {
          term.options.fontSize = fontSize(m.size);
        }
        refit();
        break;
    }
  });

  // Clipboard: Ctrl+Shift+X copies the selection, Ctrl+Shift+V pastes. The
  // Clipboard API needs a secure context and, inside a cross-origin iframe,
  // allow="clipboard-read; clipboard-write" on the <iframe>; failures are
  // only logged.

  function policyAllows(feature) {
    // Chromium only; other browsers report the denial when the call fails.
    const policy = document.permissionsPolicy || document.featurePolicy;
    return !policy || typeof policy.allowsFeature !== "function" || policy.allowsFeature(feature);
  }

  // copyWithTextarea is the old synchronous way; it needs no permission,
  // only a user gesture.
  function copyWithTextarea(text) {
    const area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.top = "-1000px";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    try {
      document.execCommand("copy");
    } catch (err) {
      console.warn("alfresco-ssh: copy failed", err);
    }
    document.body.removeChild(area);
    term.focus();
  }

  function copySelection() {
    const text = term.getSelection();
    if (!text) {
      return;
    }
    if (navigator.clipboard && navigator.clipboard.writeText && policyAllows("clipboard-write")) {
      navigator.clipboard.writeText(text).catch(function () {
        copyWithTextarea(text);
      });
    } else {
      copyWithTextarea(text);
    }
  }

  // canReadClipboard tells whether Ctrl+Shift+V should use the Clipboard API.
  // When it cannot, the key's browser default (Chromium: paste as plain text)
  // is left alone: its paste event reaches xterm.js, which sends it through
  // onData like term.paste() does.
  function canReadClipboard() {
    return Boolean(navigator.clipboard && navigator.clipboard.readText && policyAllows("clipboard-read"));
  }

  function pasteClipboard() {
    navigator.clipboard.readText().then(function (text) {
      if (text && alfresco.state === "ready") {
        term.paste(text); // honours bracketed paste mode, emits onData
      }
    }).catch(function (err) {
      console.warn("alfresco-ssh: clipboard read refused", err);
    });
  }

  term.attachCustomKeyEventHandler(function (event) {
    if (!event.ctrlKey || !event.shiftKey || event.altKey || event.metaKey) {
      return true;
    }
    // With Shift held, event.key is upper case; event.code is layout-free.
    const key = (event.key || "").toLowerCase();
    const isCopy = event.code === "KeyX" || key === "x";
    const isPaste = event.code === "KeyV" || key === "v";
    if (!isCopy && !isPaste) {
      return true;
    }
    // Act on keydown only; keyup and keypress are swallowed as well so that
    // the shortcut never reaches the remote shell.
    if (event.type === "keydown") {
      if (isCopy) {
        event.preventDefault();
        copySelection();
      } else if (canReadClipboard()) {
        event.preventDefault(); // no second paste from the browser default
        pasteClipboard();
      }
    }
    return false;
  });
})();
