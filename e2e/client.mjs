// client.mjs drives the gateway's /ssh namespace with a real socket.io-client,
// the way the terminal page does, for the Go end-to-end tests.
//
// It reads ONE JSON scenario from stdin, runs it, prints ONE JSON result line
// to stdout and exits 0. It exits non-zero only when the script itself
// crashes (the reason goes to stderr). Install with `npm ci` in this folder.
//
// Many mode: when the input is {"scenarios": [...], "defaults": {...}}, every
// scenario (each merged over "defaults") runs at once, each on a socket of its
// own (forceNew), in this one process; the output line is then
// {"results": [result, ...], "elapsedMs": n}, results in input order.
//
// Scenario (every key but "url" may be left out):
//   url               "http://127.0.0.1:5000" (the namespace "/ssh" is added)
//   path              Socket.IO path, default "/socket.io/" (a gateway under
//                     --base-path /p serves "/p/socket.io/")
//   client            package alias: "sio-4.0.1" | "sio-4.5.4" | "sio-latest"
//                     (default "sio-latest")
//   transports        default ["polling", "websocket"] (polling, then upgrade)
//   start             payload of start-session, e.g. {"credentials_uuid": "..."};
//                     null or absent: start-session is not sent
//   resizeBeforeStart {"cols": 100, "rows": 30}: emitted as "resize" right after
//                     connect, before start-session
//   waitReady         default true: wait for connection-ready before the steps
//   steps             run in order; the first failure stops them:
//     {"send": "echo hi\n"}                  emit ssh-input {input}
//     {"expect": "regex", "flags": "s", "timeoutMs": 10000}
//                                            wait until the output received since
//                                            the end of the previous match matches
//                                            the JS regex; the cursor then moves
//                                            to the end of this match
//     {"emit": "resize", "data": {...}}      emit any event, with data if given
//     {"sendBytes": 1048576, "seed": 1}      emit ONE ssh-input of a deterministic
//                                            paste of exactly N chars (below)
//     {"waitMs": 500}                        pause
//   waitEnd           default false: after the steps, wait until the server ends
//                     the session (its disconnect)
//   timeoutMs         overall deadline, default 30000
//
// Result:
//   connected         the socket connected to /ssh
//   ready             connection-ready was received
//   readyKeys         the keys of its payload, sorted
//   transport         engine transport at the end: "polling" | "websocket";
//                     null if never connected
//   output            every ssh-output text but the closing one, concatenated
//   outputEvents      how many ssh-output events that is
//   binaryEvents      how many of them came as bytes (start-session with
//                     "binary_output": true), decoded as one UTF-8 stream
//   closing           the closing message {"output", "timeout"} (an ssh-output
//                     whose payload has the key "timeout"), or null
//   disconnectReason  reason of a disconnect that happened before the script
//                     closed the socket itself ("io server disconnect",
//                     "transport close", ...); null if still connected at the end
//   events            event names in order: connect, connect_error, disconnect
//                     and every server event but ssh-output (counted above)
//   failedStep        null | {"index": i, "reason": "..."}; index 0 with a
//                     "not ready" reason when the session ended before
//                     connection-ready
//   error             null | "..." (connect failure, deadline while waiting
//                     for connect, connection-ready or the end, bad scenario)
//   protocolErrors    payloads that break the contract (not one JSON object,
//                     wrong field types, output after the closing message, ...)
//   sentSha256        hex SHA-256 of the last sendBytes paste, or null
//   sentBytes         its length, or null
//   elapsedMs         time the scenario took
//
// The sendBytes paste: exactly N ASCII characters. Character i (from 0) is
// "\n" when i % 77 == 76 or i == N-1, so lines hold at most 76 characters and
// the paste ends with a newline; every other character is
// 0x20 + (mulberry32(seed) % 95), one PRNG step each, in order.

import { createHash } from "node:crypto";

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return Buffer.concat(chunks).toString("utf8");
}

function isObject(v) {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

// mulberry32 PRNG: deterministic, tiny, good enough for test data.
function mulberry32(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

function paste(n, seed) {
  const next = mulberry32(seed);
  const buf = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) {
    buf[i] = i % 77 === 76 || i === n - 1 ? 0x0a : 0x20 + (next() % 95);
  }
  return buf.toString("latin1");
}

function tail(s, n = 300) {
  return s.length <= n ? s : "…" + s.slice(-n);
}

// runScenario runs one scenario on a socket of its own and returns its
// result; it never throws for a problem of the scenario or the server.
async function runScenario(scenario) {
  const started = Date.now();
  const result = {
    connected: false,
    ready: false,
    readyKeys: [],
    transport: null,
    output: "",
    outputEvents: 0,
    binaryEvents: 0,
    closing: null,
    disconnectReason: null,
    events: [],
    failedStep: null,
    error: null,
    protocolErrors: [],
    sentSha256: null,
    sentBytes: null,
    elapsedMs: 0,
  };
  let socket = null;

  // Waiters: promises resolved when their predicate becomes true (checked
  // on every event) or when their time is up.
  const waiters = new Set();
  const notify = () => {
    for (const w of [...waiters]) {
      if (w.pred()) {
        waiters.delete(w);
        clearTimeout(w.timer);
        w.resolve(true);
      }
    }
  };
  const waitUntil = (pred, ms) => {
    if (pred()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const w = { pred, resolve };
      w.timer = setTimeout(() => {
        waiters.delete(w);
        resolve(pred());
      }, Math.max(0, ms));
      waiters.add(w);
    });
  };
  const currentTransport = () => {
    try {
      return socket?.io?.engine?.transport?.name ?? null;
    } catch {
      return null;
    }
  };

  try {
    await run();
  } finally {
    const t = currentTransport();
    if (t && result.connected) result.transport = t;
    if (socket) {
      socket.removeAllListeners();
      if (typeof socket.offAny === "function") socket.offAny();
      socket.close();
    }
    result.elapsedMs = Date.now() - started;
  }
  return result;

  async function run() {
    if (!isObject(scenario)) {
      result.error = "bad scenario: not a JSON object";
      return;
    }
    if (typeof scenario.url !== "string") {
      result.error = 'bad scenario: "url" must be a string';
      return;
    }
    const timeoutMs = scenario.timeoutMs ?? 30000;
    const deadline = started + timeoutMs;
    const remaining = () => deadline - Date.now();
    const clientName = scenario.client ?? "sio-latest";
    const transports = scenario.transports ?? ["polling", "websocket"];
    const steps = scenario.steps ?? [];
    const waitReady = scenario.waitReady ?? true;
    const waitEnd = scenario.waitEnd ?? false;

    let io;
    try {
      const mod = await import(clientName);
      // 4.0.1's ESM wrapper exports io as the default; later ones name it.
      io = mod.io ?? mod.default;
      if (typeof io !== "function") throw new Error("no io function in the module");
    } catch (e) {
      result.error = `load client ${clientName}: ${e.message}`;
      return;
    }

    let connectError = null;
    let disconnected = false;
    let outputLength = 0; // result.output.length, for cheap change checks
    const binaryOutput = scenario.start != null && scenario.start.binary_output === true;
    const decoder = new TextDecoder(); // of binary output, across messages

    socket = io(scenario.url.replace(/\/+$/, "") + "/ssh", {
      transports,
      reconnection: false,
      forceNew: true,
      ...(scenario.path ? { path: scenario.path } : {}),
    });
    socket.on("connect", () => {
      result.events.push("connect");
      result.connected = true;
      result.transport = currentTransport();
      socket.io.engine?.on?.("upgrade", (t) => {
        result.transport = t?.name ?? currentTransport();
      });
      notify();
    });
    socket.on("connect_error", (err) => {
      result.events.push("connect_error");
      connectError = err;
      notify();
    });
    socket.on("disconnect", (reason) => {
      result.events.push("disconnect");
      result.disconnectReason = reason;
      disconnected = true;
      notify();
    });
    socket.onAny((event, ...args) => {
      if (event !== "ssh-output") result.events.push(event);
      if (args.length !== 1 || !isObject(args[0])) {
        result.protocolErrors.push(`${event}: want one JSON object, got ${JSON.stringify(args)}`);
      }
      const p = isObject(args[0]) ? args[0] : {};
      if (event === "connection-ready") {
        if (p.ready !== true) result.protocolErrors.push(`connection-ready: ready is ${JSON.stringify(p.ready)}`);
        result.ready = true;
        result.readyKeys = Object.keys(p).sort();
      } else if (event === "ssh-output") {
        let text = "";
        if (typeof p.output === "string") {
          text = p.output;
        } else if (binaryOutput && !("timeout" in p) && ArrayBuffer.isView(p.output)) {
          text = decoder.decode(p.output, { stream: true });
          result.binaryEvents++;
        } else {
          result.protocolErrors.push(`ssh-output: output is ${typeof p.output}`);
        }
        if ("timeout" in p) {
          if (typeof p.timeout !== "boolean") {
            result.protocolErrors.push(`ssh-output: timeout is ${JSON.stringify(p.timeout)}`);
          }
          if (result.closing) result.protocolErrors.push("ssh-output: a second closing message");
          result.closing = { output: text, timeout: p.timeout };
        } else {
          if (result.closing) result.protocolErrors.push("ssh-output: output after the closing message");
          result.output += text;
          outputLength = result.output.length;
          result.outputEvents++;
        }
      }
      notify();
    });

    await waitUntil(() => result.connected || connectError || disconnected, remaining());
    if (!result.connected) {
      result.error = connectError
        ? `connect_error: ${connectError.message}`
        : `timeout: not connected within ${timeoutMs} ms`;
      return;
    }

    if (scenario.resizeBeforeStart) socket.emit("resize", scenario.resizeBeforeStart);
    if (scenario.start != null) socket.emit("start-session", scenario.start);

    if (waitReady) {
      await waitUntil(() => result.ready || result.closing || disconnected, remaining());
      if (!result.ready) {
        if (!result.closing && !disconnected) {
          result.error = `timeout: no connection-ready within ${timeoutMs} ms`;
          return;
        }
        if (steps.length > 0) {
          const why = result.closing
            ? `closing message ${JSON.stringify(result.closing.output)}`
            : `disconnect (${result.disconnectReason})`;
          result.failedStep = { index: 0, reason: `not ready: the session ended first with ${why}` };
        }
      }
    }

    let cursor = 0; // index in result.output where the next expect starts
    for (let i = 0; i < steps.length && !result.failedStep; i++) {
      const reason = await runStep(steps[i]);
      if (reason) result.failedStep = { index: i, reason };
    }

    async function runStep(step) {
      if (!isObject(step)) return "step is not an object";
      if (remaining() <= 0) return "overall deadline passed";
      if ("expect" in step) {
        let re;
        try {
          re = new RegExp(step.expect, step.flags ?? "");
        } catch (e) {
          return `bad regex: ${e.message}`;
        }
        let checked = -1;
        let match = null;
        const matched = () => {
          if (outputLength === checked) return false;
          checked = outputLength;
          match = re.exec(result.output.slice(cursor));
          return match !== null;
        };
        const ms = Math.min(step.timeoutMs ?? 10000, remaining());
        await waitUntil(() => matched() || disconnected, ms);
        if (match) {
          cursor += match.index + match[0].length;
          return null;
        }
        const pending = JSON.stringify(tail(result.output.slice(cursor)));
        if (disconnected) {
          return `disconnected (${result.disconnectReason}) before /${step.expect}/ matched; unmatched output ${pending}`;
        }
        return `timeout after ${ms} ms waiting for /${step.expect}/; unmatched output ${pending}`;
      }
      if ("waitMs" in step) {
        await sleep(Math.min(step.waitMs, remaining()));
        return null;
      }
      if (disconnected) return `disconnected (${result.disconnectReason}) before the step`;
      if ("send" in step) {
        socket.emit("ssh-input", { input: String(step.send) });
        return null;
      }
      if ("sendBytes" in step) {
        const n = step.sendBytes;
        if (!Number.isInteger(n) || n < 0) return "sendBytes must be a non-negative integer";
        const text = paste(n, step.seed ?? 1);
        result.sentSha256 = createHash("sha256").update(text, "latin1").digest("hex");
        result.sentBytes = n;
        socket.emit("ssh-input", { input: text });
        return null;
      }
      if ("emit" in step) {
        if ("data" in step) socket.emit(step.emit, step.data);
        else socket.emit(step.emit);
        return null;
      }
      return `unknown step ${JSON.stringify(step)}`;
    }

    if (waitEnd && !result.failedStep && !disconnected) {
      if (!(await waitUntil(() => disconnected, remaining()))) {
        result.error = `timeout: the server did not end the session within ${timeoutMs} ms`;
        return;
      }
    }
    if (result.closing && !disconnected) {
      if (!(await waitUntil(() => disconnected, remaining()))) {
        result.error = `timeout: no disconnect after the closing message within ${timeoutMs} ms`;
      }
    }
  }
}

async function main() {
  const started = Date.now();
  let input;
  try {
    input = JSON.parse(await readStdin());
  } catch (e) {
    return { error: `bad scenario: ${e.message}` };
  }
  if (isObject(input) && Array.isArray(input.scenarios)) {
    const defaults = isObject(input.defaults) ? input.defaults : {};
    const results = await Promise.all(
      input.scenarios.map((s) => runScenario(isObject(s) ? { ...defaults, ...s } : s)),
    );
    return { results, elapsedMs: Date.now() - started };
  }
  return runScenario(input);
}

main().then(
  (out) => process.stdout.write(JSON.stringify(out) + "\n", () => process.exit(0)),
  (e) => {
    process.stderr.write(`client.mjs crashed: ${e?.stack ?? e}\n`);
    process.exit(1);
  },
);
