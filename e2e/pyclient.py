#!/usr/bin/python3
"""pyclient.py drives the gateway's /ssh namespace with Debian's
python3-socketio (a Socket.IO client that is not JavaScript), for the Go
end-to-end tests.

It speaks the same contract as client.mjs, for a subset of it: it reads ONE
JSON scenario from stdin, runs it, prints ONE JSON result line to stdout and
exits 0 (non-zero only when the script itself crashes).

Scenario keys: url, transports (default ["polling", "websocket"]), start,
resizeBeforeStart, waitReady (default true), waitEnd (default false),
timeoutMs (default 30000) and steps of the kinds {"send": text},
{"expect": regex, "timeoutMs": n} and {"emit": event, "data": payload}; they
mean what client.mjs's header says, with Python regular expressions.

Result keys: connected, ready, transport, output, outputEvents, closing,
disconnectReason ("io server disconnect" when the server disconnected the
namespace, "transport close" when the connection dropped), events,
failedStep, error, protocolErrors, elapsedMs.

Needs python3-socketio, and python3-requests (polling) and python3-websocket
(websocket) for its Engine.IO client.
"""

import json
import re
import sys
import threading
import time

import socketio

NAMESPACE = "/ssh"


class Client(socketio.Client):
    """A client that tells a namespace DISCONNECT from the server apart from
    a dropped connection. The library reports both as a plain disconnect
    event, so its two handlers are wrapped."""

    def __init__(self, session):
        super().__init__(reconnection=False)
        self.session = session

    def _handle_disconnect(self, namespace):
        self.session.disconnected("io server disconnect")
        super()._handle_disconnect(namespace)

    def _handle_eio_disconnect(self):
        self.session.disconnected("transport close")
        super()._handle_eio_disconnect()


class Session:
    def __init__(self):
        self.cond = threading.Condition()
        self.result = {
            "connected": False,
            "ready": False,
            "transport": None,
            "output": "",
            "outputEvents": 0,
            "closing": None,
            "disconnectReason": None,
            "events": [],
            "failedStep": None,
            "error": None,
            "protocolErrors": [],
            "elapsedMs": 0,
        }
        self.is_disconnected = False

    def disconnected(self, reason):
        with self.cond:
            if not self.is_disconnected:
                self.is_disconnected = True
                self.result["disconnectReason"] = reason
                self.result["events"].append("disconnect")
            self.cond.notify_all()

    def on_event(self, event, args):
        r = self.result
        with self.cond:
            if event != "ssh-output":
                r["events"].append(event)
            if len(args) != 1 or not isinstance(args[0], dict):
                r["protocolErrors"].append(
                    "%s: want one JSON object, got %s" % (event, json.dumps(args)))
            p = args[0] if args and isinstance(args[0], dict) else {}
            if event == "connection-ready":
                if p.get("ready") is not True:
                    r["protocolErrors"].append(
                        "connection-ready: ready is %s" % json.dumps(p.get("ready")))
                r["ready"] = True
            elif event == "ssh-output":
                text = p.get("output")
                if not isinstance(text, str):
                    r["protocolErrors"].append(
                        "ssh-output: output is %s" % type(text).__name__)
                    text = ""
                if "timeout" in p:
                    if not isinstance(p["timeout"], bool):
                        r["protocolErrors"].append(
                            "ssh-output: timeout is %s" % json.dumps(p["timeout"]))
                    if r["closing"] is not None:
                        r["protocolErrors"].append(
                            "ssh-output: a second closing message")
                    r["closing"] = {"output": text, "timeout": p["timeout"]}
                else:
                    if r["closing"] is not None:
                        r["protocolErrors"].append(
                            "ssh-output: output after the closing message")
                    r["output"] += text
                    r["outputEvents"] += 1
            self.cond.notify_all()

    def wait(self, pred, seconds):
        with self.cond:
            return self.cond.wait_for(pred, timeout=max(0.0, seconds))


def run(scenario, session):
    r = session.result
    if not isinstance(scenario, dict) or not isinstance(scenario.get("url"), str):
        r["error"] = 'bad scenario: "url" must be a string'
        return None
    started = time.monotonic()
    deadline = started + scenario.get("timeoutMs", 30000) / 1000.0

    def remaining():
        return deadline - time.monotonic()

    sio = Client(session)

    @sio.on("connect", namespace=NAMESPACE)
    def on_connect():
        with session.cond:
            r["events"].append("connect")
            r["connected"] = True
            session.cond.notify_all()

    @sio.on("*", namespace=NAMESPACE)
    def on_any(event, *args):
        session.on_event(event, list(args))

    try:
        sio.connect(scenario["url"], namespaces=[NAMESPACE],
                    transports=scenario.get("transports") or ["polling", "websocket"],
                    wait_timeout=max(1, int(remaining())))
    except Exception as e:  # socketio.exceptions.ConnectionError and kin
        r["error"] = "connect_error: %s" % e
        return sio
    if not session.wait(lambda: r["connected"] or session.is_disconnected, remaining()):
        r["error"] = "timeout: not connected"
        return sio

    if scenario.get("resizeBeforeStart"):
        sio.emit("resize", scenario["resizeBeforeStart"], namespace=NAMESPACE)
    if scenario.get("start") is not None:
        sio.emit("start-session", scenario["start"], namespace=NAMESPACE)

    steps = scenario.get("steps") or []
    if scenario.get("waitReady", True):
        session.wait(lambda: r["ready"] or r["closing"] or session.is_disconnected, remaining())
        if not r["ready"]:
            if not r["closing"] and not session.is_disconnected:
                r["error"] = "timeout: no connection-ready"
                return sio
            if steps:
                r["failedStep"] = {"index": 0, "reason": "not ready: the session ended first with %s"
                                   % json.dumps(r["closing"] or r["disconnectReason"])}

    cursor = 0
    for i, step in enumerate(steps):
        if r["failedStep"]:
            break
        reason = None
        if "expect" in step:
            pattern = re.compile(step["expect"])
            found = []

            def matched():
                m = pattern.search(r["output"], cursor)
                if m:
                    found.append(m)
                return bool(m) or session.is_disconnected

            session.wait(matched, min(step.get("timeoutMs", 10000) / 1000.0, remaining()))
            if found:
                cursor = found[-1].end()
            else:
                reason = "no match for /%s/ (disconnected %s); unmatched output %s" % (
                    step["expect"], session.is_disconnected, json.dumps(r["output"][cursor:][-300:]))
        elif session.is_disconnected:
            reason = "disconnected (%s) before the step" % r["disconnectReason"]
        elif "send" in step:
            sio.emit("ssh-input", {"input": step["send"]}, namespace=NAMESPACE)
        elif "emit" in step:
            if "data" in step:
                sio.emit(step["emit"], step["data"], namespace=NAMESPACE)
            else:
                sio.emit(step["emit"], namespace=NAMESPACE)
        else:
            reason = "unknown step %s" % json.dumps(step)
        if reason:
            r["failedStep"] = {"index": i, "reason": reason}

    if (scenario.get("waitEnd") and not r["failedStep"]) or r["closing"]:
        if not session.wait(lambda: session.is_disconnected, remaining()):
            r["error"] = "timeout: the server did not end the session"
    return sio


def main():
    session = Session()
    started = time.monotonic()
    try:
        scenario = json.loads(sys.stdin.read())
    except ValueError as e:
        session.result["error"] = "bad scenario: %s" % e
        scenario = None
    sio = None
    if scenario is not None:
        try:
            sio = run(scenario, session)
        finally:
            if sio is not None:
                try:
                    session.result["transport"] = sio.transport() if session.result["connected"] else None
                except Exception:
                    pass
                sio.disconnect()
    session.result["elapsedMs"] = int((time.monotonic() - started) * 1000)
    with session.cond:
        out = json.dumps(session.result)
    sys.stdout.write(out + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
