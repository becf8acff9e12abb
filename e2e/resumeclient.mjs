// resumeclient.mjs drives one resumable session with socket.io-client
// 4.8.4 through connection drops, for the Go resume tests (resume_test.go).
//
// It reads ONE JSON object from stdin:
//   url               gateway (or proxy) address; the namespace "/ssh" is added
//   credentials       the credentials id (start-session opts in to resume)
//   transports        of the first connection, e.g. ["websocket"]
//   resumeTransports  of every resuming connection
//   command           typed into the shell once connection-ready arrives
//   cutAt             print {"event": "cut"} once this text has been shown
//   done              the text that ends the run once shown
//   timeoutMs         overall deadline
//   route             optional: "same" sends every resuming connection the
//                     query parameter node=<the "node" of connection-ready>
//                     (as the stock page does), "other" node=<a name of
//                     nodes other than that one>
//   nodes             the node names, for route "other"
// and prints JSON lines to stdout: {"event": "cut"}, {"event": "resumed",
// "at": epoch ms, "transport": t} for each resume, and at the end
// {"event": "end", "output", "duplicates", "resumes", "node", "error"}
// (node: the "node" of the first connection-ready).
// Output is acknowledged with ssh-ack as the stock page does, every
// 64 KiB, but also after 200 ms where the page waits 1 s; a lost
// connection is resumed every 250 ms with the last seq shown, on a new
// socket.

import { io } from "sio-latest";

const input = JSON.parse(await new Promise((resolve) => {
  let s = "";
  process.stdin.on("data", (c) => { s += c; });
  process.stdin.on("end", () => resolve(s));
}));

const print = (o) => process.stdout.write(JSON.stringify(o) + "\n");
let output = "", shown = 0, acked = 0, unacked = 0, duplicates = 0, resumes = 0;
let token = "", node = null, cutSent = false, finished = false, ackTimer = null, retry = null, socket = null;

function finish(error) {
  if (finished) return;
  finished = true;
  clearTimeout(ackTimer);
  clearTimeout(retry);
  if (socket) socket.disconnect();
  print({ event: "end", output, duplicates, resumes, node, error: error || null });
  process.exit(0);
}
setTimeout(() => finish("deadline"), input.timeoutMs);

function ack() {
  clearTimeout(ackTimer);
  ackTimer = null;
  if (shown > acked && socket && socket.connected) {
    acked = shown;
    unacked = 0;
    socket.emit("ssh-ack", { seq: acked });
  }
}

function connect(transports, resuming) {
  const query = {};
  if (resuming && input.route === "same") query.node = node;
  if (resuming && input.route === "other") query.node = input.nodes.find((n) => n !== node);
  const s = io(input.url + "/ssh", { transports, reconnection: false, forceNew: true, query });
  socket = s;
  s.on("connect", () => {
    if (resuming) {
      s.emit("resume-session", { resume_token: token, seq: shown });
    } else {
      s.emit("start-session", { credentials_uuid: input.credentials, resume: true });
    }
  });
  s.on("connection-ready", (d) => {
    token = d.resume_token;
    if (!resuming) node = d.node === undefined ? null : d.node;
    if (!token) return finish("no resume_token in connection-ready");
    if (resuming) {
      if (d.resumed !== true) return finish("connection-ready without resumed");
      resumes++;
      acked = shown;
      print({ event: "resumed", at: Date.now(), transport: s.io.engine.transport.name });
    } else {
      s.emit("ssh-input", { input: input.command + "\n" });
    }
  });
  s.on("ssh-output", (d) => {
    if ("timeout" in d) return finish("closing message: " + d.output);
    if (d.seq <= shown) {
      duplicates++;
      return;
    }
    if (d.seq !== shown + 1) return finish(`seq ${d.seq} after ${shown}`);
    shown = d.seq;
    output += d.output;
    unacked += d.output.length;
    if (unacked >= 65536) ack();
    else if (!ackTimer) ackTimer = setTimeout(ack, 200);
    if (!cutSent && output.includes(input.cutAt)) {
      cutSent = true;
      print({ event: "cut" });
    }
    if (output.includes(input.done)) finish();
  });
  const lost = () => {
    if (finished || socket !== s) return;
    s.close();
    retry = setTimeout(() => connect(input.resumeTransports, true), 250);
  };
  s.on("disconnect", lost);
  s.on("connect_error", lost);
}

connect(input.transports, false);
