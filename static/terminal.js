// terminal.js drives the alfresco-ssh terminal page: an xterm.js terminal
// talking to the gateway over Socket.IO (namespace /ssh). The wire contract is
// shared/PROTOCOL.md. Plain browser JS, no build step; the vendored UMD
// bundles loaded before this file provide the globals Terminal, FitAddon,
// WebLinksAddon, SearchAddon, Unicode11Addon and io.
(function () {
  "use strict";

  // No user input and no output for this long ends the session (the stock
  // Flask page used 10 minutes). Both keystrokes and terminal output count as
  // activity, so a long-running command that keeps printing (tail -f, a build)
  // is not cut off while the user watches it.
  const INACTIVITY_TIMEOUT_MS = 600000;
  const RESIZE_DEBOUNCE_MS = 150;
  // Failed attempts to reach the gateway before giving up. The credentials
  // are only consumed by start-session, so a reload can still succeed.
  const MAX_CONNECT_ATTEMPTS = 3;

  const RED = "\x1b[91m";
  const RESET = "\x1b[0m";

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
    };
  }
  const config = readConfig();
  const container = document.getElementById("terminal");

  const term = new Terminal({
    allowProposedApi: true, // term.unicode, for the Unicode 11 widths
    cursorBlink: true,
    fontFamily: '"DejaVu Sans Mono", "Cascadia Mono", Menlo, Consolas, "Liberation Mono", "Courier New", monospace',
    fontSize: 15,
    scrollback: 10000,
  });
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

  function clearWait() {
    if (waitShown) {
      waitShown = false;
      // Erase the line through the write queue, so that it is ordered
      // after the "Wait..." write (term.reset() would run before it).
      term.write("\r\x1b[2K");
    }
  }

  // The URL names the namespace; the engine's path carries the base path.
  const socket = io("/ssh", { path: config.basePath + "/socket.io/", transports: config.transports });

  // state is "connecting", "ready" (input flows) or "ended" (final).
  const alfresco = { term, socket, state: "connecting", fitAddon, searchAddon, config };
  window.alfresco = alfresco;

  let started = false; // start-session sent; credentials are single use
  let closingSeen = false; // the server's closing ssh-output arrived
  let failedConnects = 0;
  let lastSize = null; // {cols, rows} last sent to the server
  let inactivityTimer = 0;
  let timeoutSent = false;

  function sendResize(force) {
    if (!socket.connected || alfresco.state === "ended") {
      return;
    }
    const size = { cols: term.cols, rows: term.rows };
    if (!force && lastSize && lastSize.cols === size.cols && lastSize.rows === size.rows) {
      return;
    }
    lastSize = size;
    socket.emit("resize", size);
  }

  // end marks the session as over: no more input, no reconnection, and the
  // text on screen stays. message, if given, is shown in red.
  function end(message) {
    if (alfresco.state === "ended") {
      return;
    }
    alfresco.state = "ended";
    clearTimeout(inactivityTimer);
    if (message) {
      // Replace a lone "Wait..." rather than printing below it.
      const lead = waitShown ? "" : "\r\n";
      clearWait();
      term.write(lead + RED + message + RESET + "\r\n");
    }
    term.options.cursorBlink = false;
    socket.io.reconnection(false);
    socket.disconnect(); // also stops a pending reconnection attempt
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
    if (started) {
      // A reconnection after a transport drop: the credentials are spent,
      // so a new session cannot be started.
      end("Connection to the gateway lost.");
      return;
    }
    started = true;
    fitAddon.fit();
    sendResize(true); // the server opens the PTY at this size
    socket.emit("start-session", { credentials_uuid: credentialsId });
  });

  socket.on("connection-ready", function () {
    if (alfresco.state !== "connecting") {
      return;
    }
    clearWait();
    alfresco.state = "ready";
    fitAddon.fit();
    sendResize(true);
    term.focus();
    noteActivity();
  });

  socket.on("ssh-output", function (data) {
    if (alfresco.state === "ended" || !data || typeof data.output !== "string") {
      return;
    }
    clearWait();
    term.write(data.output);
    if (Object.prototype.hasOwnProperty.call(data, "timeout")) {
      // The closing message, already red: keep it on screen and stop.
      closingSeen = true;
      end();
      return;
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
    end("Connection to the gateway lost.");
  });

  socket.on("connect_error", function () {
    if (alfresco.state === "ended") {
      return;
    }
    failedConnects++;
    // socket.active is false when the server refused the connection outright
    // (the client will not retry); otherwise retry a few times, then stop.
    if (!socket.active || failedConnects >= MAX_CONNECT_ATTEMPTS) {
      end("Could not connect to the gateway. Reload the page to try again.");
    }
  });

  term.onData(function (data) {
    if (alfresco.state !== "ready") {
      return;
    }
    socket.emit("ssh-input", { input: data });
    noteActivity();
  });

  // Resizing: the container follows the viewport; refit after it settles.
  let resizeTimer = 0;
  function scheduleFit() {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(function () {
      fitAddon.fit();
      sendResize(false);
    }, RESIZE_DEBOUNCE_MS);
  }
  window.addEventListener("resize", scheduleFit);
  if (typeof ResizeObserver === "function") {
    new ResizeObserver(scheduleFit).observe(container);
  }

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
