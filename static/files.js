// files.js adds the file panel to the terminal page: the remote directory
// listing, downloads by click, uploads by a button or by dropping files
// anywhere on the page, each with its progress and a cancel button. It talks
// to the gateway's /files/ endpoints (README "Files") with the terminal's
// files token from connection-ready, so files travel over the terminal's own
// SSH connection. Plain browser JS, no build step, no inline code (the page
// CSP allows only 'self' scripts); loaded after terminal.js, whose
// window.alfresco it uses. Nothing shows when the server has files off.
(function () {
  "use strict";

  const alfresco = window.alfresco;
  if (!alfresco || !alfresco.config || !alfresco.config.files) {
    return;
  }

  // Transfers running at once; the gateway allows 4 per terminal.
  const MAX_ACTIVE = 3;
  // Finished transfers kept in the list.
  const MAX_FINISHED = 20;
  // A broken download resumes (Range) this many times before giving up.
  const MAX_RESUMES = 3;
  // A download's received chunks are folded into a Blob every this many
  // bytes, which the browser may keep on disk rather than in the heap.
  const FOLD_BYTES = 32 << 20;

  const base = alfresco.config.basePath + "/files/";
  // maxUpload is the largest file the gateway takes (filesMaxUpload of the
  // page configuration, which terminal.js does not carry), 0 for any.
  function maxUpload() {
    try {
      const max = JSON.parse(document.body.dataset.config || "{}").filesMaxUpload;
      return typeof max === "number" && max > 0 ? max : 0;
    } catch (err) {
      return 0;
    }
  }
  let token = null; // the terminal's files token, while it lives
  let ended = false;
  let cwd = null; // the directory shown; null: home, not listed yet
  let listing = 0; // the latest listing request, to drop stale answers

  // ---- DOM ----------------------------------------------------------------

  function el(tag, props, children) {
    const e = document.createElement(tag);
    Object.keys(props || {}).forEach(function (k) {
      if (k === "class") {
        e.className = props[k];
      } else if (k === "text") {
        e.textContent = props[k];
      } else if (k.startsWith("aria-") || k.startsWith("data-")) {
        e.setAttribute(k, props[k]);
      } else {
        e[k] = props[k];
      }
    });
    (children || []).forEach(function (c) { e.appendChild(c); });
    return e;
  }

  function button(text, title, onClick, extra) {
    const b = el("button", Object.assign({ type: "button", text: text, title: title, "aria-label": title }, extra));
    b.addEventListener("click", onClick);
    return b;
  }

  const toggleButton = button("Files", "Files (Ctrl+Shift+F)", function () { toggle(); },
    { class: "files-toggle", "aria-expanded": "false", "aria-controls": "files-panel" });
  const picker = el("input", { type: "file", multiple: true, hidden: true, class: "files-picker" });
  const pathBar = el("nav", { class: "files-path", "aria-label": "Current directory" });
  const errorBox = el("div", { class: "files-error", role: "alert", hidden: true });
  const list = el("ul", { class: "files-list", "aria-label": "Directory entries" });
  const transfers = el("ul", { class: "files-transfers", "aria-label": "Transfers" });
  const actions = el("div", { class: "files-actions" }, [
    button("\u2191", "Parent directory", function () { if (cwd && cwd !== "/") { show(parent(cwd)); } }),
    button("~", "Home directory", function () { show(""); }),
    button("\u21bb", "Refresh", function () { show(cwd || ""); }),
    button("Upload", "Upload files", function () { picker.click(); }, { class: "files-upload" }),
    button("\u00d7", "Close (Esc)", function () { toggle(false); }),
  ]);
  const panel = el("aside", { id: "files-panel", class: "files-panel", hidden: true, tabIndex: -1, "aria-label": "Files" }, [
    el("header", { class: "files-head" }, [pathBar, actions]),
    errorBox, list, transfers, picker,
  ]);
  const dropZone = el("div", { class: "files-drop", hidden: true }, [el("div", { class: "files-drop-text" })]);
  document.body.appendChild(toggleButton);
  document.body.appendChild(panel);
  document.body.appendChild(dropZone);

  function showError(message) {
    errorBox.textContent = message || "";
    errorBox.hidden = !message;
  }

  function isOpen() {
    return !panel.hidden;
  }

  // toggle opens or closes the panel (flips it without an argument).
  function toggle(open) {
    if (open === undefined) {
      open = !isOpen();
    }
    panel.hidden = !open;
    toggleButton.setAttribute("aria-expanded", String(open));
    document.body.classList.toggle("files-open", open);
    if (open) {
      show(cwd || "");
      panel.focus(); // keys go to the panel (Escape closes it), not the terminal
    } else if (alfresco.term) {
      alfresco.term.focus();
    }
  }

  // ---- the remote side ----------------------------------------------------

  function url(endpoint, path) {
    return base + endpoint + (path ? "?path=" + encodeURIComponent(path) : "");
  }

  function authorization() {
    return { Authorization: "Bearer " + token };
  }

  // reason reads an error answer's message.
  async function reason(res) {
    try {
      const body = await res.json();
      if (body && typeof body.error === "string") {
        return body.error;
      }
    } catch (err) {
      // not JSON: fall through
    }
    return "The gateway answered " + res.status + " " + res.statusText;
  }

  function unavailable() {
    return ended ? "The terminal session has ended: files are no longer available." :
      "Files are available once the terminal is connected.";
  }

  function parent(p) {
    const i = p.replace(/\/+$/, "").lastIndexOf("/");
    return i <= 0 ? "/" : p.slice(0, i);
  }

  function join(dir, name) {
    return dir.replace(/\/+$/, "") + "/" + name;
  }

  // show lists the directory path ("" is home) in the panel.
  async function show(path) {
    if (!token) {
      showError(unavailable());
      return;
    }
    const request = ++listing;
    panel.setAttribute("aria-busy", "true");
    try {
      const res = await fetch(url("list", path), { headers: authorization(), cache: "no-store" });
      if (request !== listing) {
        return;
      }
      if (!res.ok) {
        showError(await reason(res));
        return;
      }
      const body = await res.json();
      if (request !== listing) {
        return;
      }
      cwd = body.path;
      showError(body.truncated ? "Only the first " + body.entries.length + " entries are shown." : "");
      render(body.entries);
    } catch (err) {
      if (request === listing) {
        showError("Could not reach the gateway: " + err.message);
      }
    } finally {
      if (request === listing) {
        panel.removeAttribute("aria-busy");
      }
    }
  }

  function renderPath() {
    pathBar.textContent = "";
    const parts = cwd.split("/").filter(Boolean);
    pathBar.appendChild(button("/", "Go to /", function () { show("/"); }, { class: "files-crumb" }));
    let at = "";
    parts.forEach(function (part, i) {
      at += "/" + part;
      const target = at;
      if (i > 0) {
        pathBar.appendChild(el("span", { class: "files-sep", text: "/" }));
      }
      pathBar.appendChild(button(part, "Go to " + target, function () { show(target); }, { class: "files-crumb" }));
    });
    pathBar.title = cwd;
    pathBar.scrollLeft = pathBar.scrollWidth;
  }

  function isDir(e) {
    return e.type === "dir" || (e.type === "link" && e.target === "dir");
  }

  // The temporary files of uploads in progress (files/upload.go) are not
  // shown.
  const partial = /^\.upload-[0-9a-f]{16}\.part$/;

  function render(entries) {
    renderPath();
    entries = entries.filter(function (e) { return !partial.test(e.name); });
    entries.sort(function (a, b) {
      return (isDir(b) - isDir(a)) || a.name.localeCompare(b.name);
    });
    list.textContent = "";
    if (cwd !== "/") {
      list.appendChild(row({ name: "..", type: "dir" }, parent(cwd)));
    }
    entries.forEach(function (e) {
      list.appendChild(row(e, join(cwd, e.name)));
    });
    if (!entries.length) {
      list.appendChild(el("li", { class: "files-empty", text: "(empty directory)" }));
    }
  }

  function row(e, path) {
    const dir = isDir(e);
    const kind = e.type === "link" ? "link " + (e.target || "broken") : e.type;
    const b = el("button", {
      type: "button", class: "files-entry", title: (dir ? "Open " : "Download ") + path,
      "data-name": e.name, "data-type": e.type,
    }, [
      el("span", { class: "files-icon files-icon-" + (dir ? "dir" : "file") + (e.type === "link" ? " files-icon-link" : ""), "aria-label": kind }),
      el("span", { class: "files-name", text: e.name }),
      el("span", { class: "files-size", text: dir || e.name === ".." ? "" : size(e.size) }),
      el("span", { class: "files-date", text: e.mtime ? date(e.mtime) : "" }),
    ]);
    b.addEventListener("click", function () {
      if (dir) {
        show(path);
      } else {
        download(path, e.name);
      }
    });
    return el("li", {}, [b]);
  }

  function size(n) {
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) {
      n /= 1024;
      i++;
    }
    return (i === 0 ? n : n.toFixed(n < 10 ? 1 : 0)) + " " + units[i];
  }

  function date(seconds) {
    const d = new Date(seconds * 1000);
    const two = function (v) { return String(v).padStart(2, "0"); };
    return d.getFullYear() + "-" + two(d.getMonth() + 1) + "-" + two(d.getDate()) + " " +
      two(d.getHours()) + ":" + two(d.getMinutes());
  }

  // ---- transfers ------------------------------------------------------------

  const queue = []; // transfers waiting for a slot
  let active = 0;

  // Transfer is one upload or download shown in the list; run does the work
  // and resolves with a message, or rejects with the reason shown.
  function Transfer(direction, name, total, run) {
    this.direction = direction;
    this.name = name;
    this.total = total;
    this.run = run;
    this.state = "queued";
    this.cancelled = false;
    this.abort = null; // set while running
    this.bar = el("progress", { max: 1, value: 0 });
    this.text = el("span", { class: "files-transfer-text", text: "waiting" });
    this.cancelButton = button("\u00d7", "Cancel", this.cancel.bind(this), { class: "files-cancel" });
    this.node = el("li", { class: "files-transfer", "data-direction": direction, "data-state": "queued", "data-name": name }, [
      el("span", { class: "files-transfer-name", text: (direction === "upload" ? "\u2191 " : "\u2193 ") + name, title: name }),
      this.bar, this.text, this.cancelButton,
    ]);
    transfers.prepend(this.node);
  }

  Transfer.prototype.setState = function (state, text) {
    this.state = state;
    this.node.setAttribute("data-state", state);
    this.text.textContent = text;
    if (state === "done" || state === "failed" || state === "cancelled") {
      this.cancelButton.remove();
      prune();
    }
  };

  Transfer.prototype.progress = function (done, total) {
    if (total) {
      this.bar.value = done / total;
      this.text.textContent = size(done) + " of " + size(total);
    } else {
      this.bar.removeAttribute("value");
      this.text.textContent = size(done);
    }
  };

  Transfer.prototype.cancel = function () {
    if (this.state === "queued") {
      queue.splice(queue.indexOf(this), 1);
      this.setState("cancelled", "cancelled");
      return;
    }
    this.cancelled = true;
    if (this.abort) {
      this.abort();
    }
  };

  function prune() {
    const finished = transfers.querySelectorAll('[data-state="done"], [data-state="failed"], [data-state="cancelled"]');
    for (let i = MAX_FINISHED; i < finished.length; i++) {
      finished[i].remove();
    }
  }

  function enqueue(t) {
    queue.push(t);
    pump();
  }

  function pump() {
    while (active < MAX_ACTIVE && queue.length) {
      const t = queue.shift();
      active++;
      t.setState("running", "starting");
      t.run(t).then(function (message) {
        t.setState("done", message);
      }, function (err) {
        if (t.cancelled) {
          t.setState("cancelled", "cancelled");
        } else {
          t.setState("failed", err.message);
        }
      }).finally(function () {
        active--;
        pump();
      });
    }
  }

  // upload sends files into dir, one request each.
  function upload(fileList, dir) {
    if (!token) {
      toggle(true);
      showError(unavailable());
      return;
    }
    const max = maxUpload();
    Array.prototype.forEach.call(fileList, function (file) {
      const t = new Transfer("upload", file.name, file.size, function () {
        return sendFile(t, file, dir);
      });
      if (max && file.size > max) {
        t.setState("failed", "Larger than the gateway allows (" + size(max) + ")");
        return;
      }
      enqueue(t);
    });
  }

  function sendFile(t, file, dir) {
    return new Promise(function (resolve, reject) {
      const xhr = new XMLHttpRequest();
      t.abort = function () { xhr.abort(); };
      xhr.open("POST", url("upload", dir));
      xhr.setRequestHeader("Authorization", "Bearer " + token);
      xhr.responseType = "json";
      xhr.upload.onprogress = function (ev) {
        t.progress(ev.loaded, ev.lengthComputable ? ev.total : 0);
      };
      xhr.onload = function () {
        const body = xhr.response || {};
        if (xhr.status === 200 && body.success) {
          t.progress(file.size, file.size);
          if (body.path === cwd && isOpen()) {
            show(cwd);
          }
          resolve("uploaded to " + body.path);
          return;
        }
        reject(new Error(typeof body.error === "string" ? body.error : "The gateway answered " + xhr.status));
      };
      xhr.onerror = function () { reject(new Error("The upload was interrupted")); };
      xhr.onabort = function () { reject(new Error("cancelled")); };
      const form = new FormData();
      form.append("file", file, file.name);
      xhr.send(form);
    });
  }

  function download(path, name) {
    if (!token) {
      showError(unavailable());
      return;
    }
    enqueue(new Transfer("download", name, 0, function (t) {
      return fetchFile(t, path, name);
    }));
  }

  // fetchFile downloads path into a Blob, resuming with a Range request
  // when the connection breaks, then saves it under name.
  async function fetchFile(t, path, name) {
    const controller = new AbortController();
    t.abort = function () { controller.abort(); };
    let parts = []; // Blobs and chunks received, in order
    let pending = 0; // bytes in chunks not yet folded into a Blob
    let received = 0;
    let total = 0;
    let validator = "";
    for (let attempt = 0; ; attempt++) {
      const headers = authorization();
      if (received > 0) {
        headers.Range = "bytes=" + received + "-";
        headers["If-Range"] = validator;
      }
      try {
        const res = await fetch(url("download", path), { headers: headers, signal: controller.signal, cache: "no-store" });
        if (res.status === 200 && received > 0) {
          parts = []; // the file changed: start over
          pending = 0;
          received = 0;
        } else if (!res.ok) {
          throw new Error(await reason(res));
        }
        if (received === 0) {
          total = Number(res.headers.get("Content-Length")) || 0;
          validator = res.headers.get("Last-Modified") || "";
        }
        const reader = res.body.getReader();
        for (;;) {
          const chunk = await reader.read();
          if (chunk.done) {
            break;
          }
          parts.push(chunk.value);
          pending += chunk.value.length;
          received += chunk.value.length;
          if (pending >= FOLD_BYTES) {
            parts = [new Blob(parts)];
            pending = 0;
          }
          t.progress(received, total);
        }
        if (total && received < total) {
          throw new TypeError("the connection closed early");
        }
        break;
      } catch (err) {
        // fetch and reads fail with a TypeError when the network breaks.
        if (t.cancelled || !(err instanceof TypeError) || !validator || attempt >= MAX_RESUMES) {
          throw err;
        }
        t.text.textContent = "resuming";
      }
    }
    const blob = new Blob(parts, { type: "application/octet-stream" });
    const link = el("a", { href: URL.createObjectURL(blob), download: name, hidden: true });
    document.body.appendChild(link);
    link.click();
    link.remove();
    setTimeout(function () { URL.revokeObjectURL(link.href); }, 60000);
    return "saved (" + size(received) + ")";
  }

  // ---- input ------------------------------------------------------------------

  picker.addEventListener("change", function () {
    upload(picker.files, cwd || "");
    picker.value = "";
  });

  // Ctrl+Shift+F toggles the panel; Escape closes it. The listener runs in
  // the capture phase, before xterm.js sees the key.
  window.addEventListener("keydown", function (ev) {
    if (ev.ctrlKey && ev.shiftKey && !ev.altKey && ev.code === "KeyF") {
      ev.preventDefault();
      ev.stopPropagation();
      toggle();
    } else if (ev.key === "Escape" && isOpen() && panel.contains(document.activeElement)) {
      ev.preventDefault();
      toggle(false);
    }
  }, true);

  // Dropping files anywhere on the page uploads them to the panel's
  // directory (home until the panel has been opened).
  let dragDepth = 0;
  function carriesFiles(ev) {
    return ev.dataTransfer && Array.prototype.indexOf.call(ev.dataTransfer.types, "Files") >= 0;
  }
  function hideDrop() {
    dragDepth = 0;
    dropZone.hidden = true;
  }
  document.addEventListener("dragenter", function (ev) {
    if (!carriesFiles(ev)) {
      return;
    }
    ev.preventDefault();
    dragDepth++;
    dropZone.firstChild.textContent = token ? "Drop to upload to " + (cwd || "your home directory") : unavailable();
    dropZone.hidden = false;
  });
  document.addEventListener("dragover", function (ev) {
    if (carriesFiles(ev)) {
      ev.preventDefault();
      ev.dataTransfer.dropEffect = token ? "copy" : "none";
    }
  });
  document.addEventListener("dragleave", function (ev) {
    if (carriesFiles(ev) && --dragDepth <= 0) {
      hideDrop();
    }
  });
  document.addEventListener("drop", function (ev) {
    if (!carriesFiles(ev)) {
      return;
    }
    ev.preventDefault();
    hideDrop();
    if (ev.dataTransfer.files.length) {
      if (!isOpen()) {
        toggle(true);
      }
      upload(ev.dataTransfer.files, cwd || "");
    }
  });

  // ---- the session --------------------------------------------------------------

  // The token comes with each "ready" of terminal.js (again after a
  // resume) and stays valid while the page reconnects: the gateway keeps a
  // detached session, so transfers and the panel go on meanwhile. It goes
  // when the session has ended.
  function ready(filesToken) {
    token = filesToken || null;
    if (token && isOpen()) {
      show(cwd || "");
    }
  }
  function over() {
    token = null;
    ended = true;
    toggleButton.classList.add("files-ended");
    if (isOpen()) {
      showError(unavailable());
    }
  }
  alfresco.events.addEventListener("ready", function (ev) { ready(ev.detail.filesToken); });
  alfresco.events.addEventListener("ended", over);
  if (alfresco.state === "ready") {
    ready(alfresco.filesToken);
  } else if (alfresco.state === "ended") {
    over();
  }

  alfresco.files = { toggle: toggle, show: show, upload: upload };
})();
