// Package e2e is the drop-in acceptance suite of alfresco-ssh: it holds no
// code of its own, only tests (see the _test.go files) and the Node and
// Python clients they drive.
//
// The tests build the real gateway binary once per test process and run it
// against a real OpenSSH sshd (internal/sshdtest). They reach it the way its
// users do: headless Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core through browser.mjs) on the stock page, inside a
// cross-origin <iframe> and on Flask-era pages given with --template;
// socket.io-client 4.0.1, 4.5.4 and 4.8.4 from Node (client.mjs) over every
// transport; Debian's python3-socketio (pyclient.py); and 200 clients at once.
//
// Needs: node with `npm ci` run in this directory, /usr/bin/chromium, and
// Debian's python3-socketio with python3-requests and python3-websocket.
// Locally a missing tool skips the tests that need it; with CI=true it fails
// them.
package e2e
