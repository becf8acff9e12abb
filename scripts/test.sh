#!/usr/bin/env bash
# Runs the whole test suite: static checks, then every Go test with the race
# detector, including the integration tests against a real OpenSSH sshd, the
# JS socket.io-client from npm, Python's socketio client and headless
# Chromium. Missing Debian packages are installed when running as root.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v chromium >/dev/null || need+=(chromium)
/usr/bin/python3 -c 'import socketio, requests, websocket' 2>/dev/null || need+=(python3-socketio python3-requests python3-websocket)
command -v node >/dev/null || need+=(nodejs npm)
command -v redis-server >/dev/null || need+=(redis-server)
[ -x /usr/sbin/nginx ] || command -v nginx >/dev/null || need+=(nginx)
command -v promtool >/dev/null || need+=(prometheus)
if ((${#need[@]})); then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
		echo "installing ${need[*]}"
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
	else
		echo "missing ${need[*]}: the integration tests that need them will be skipped" >&2
	fi
fi

# The Node clients of the integration tests, exactly as locked.
if [ ! -d e2e/node_modules ] || [ e2e/package-lock.json -nt e2e/node_modules/.package-lock.json ]; then
	npm ci --prefix e2e --no-audit --no-fund --loglevel=error
fi

unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './e2e/node_modules/*'))
if [ -n "$unformatted" ]; then
	echo "gofmt would change: $unformatted" >&2
	exit 1
fi
go vet ./...
go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

# Each fuzz target briefly, beyond its seed corpus (which the test run
# below replays too). Longer runs: go test -run '^$' -fuzz '^FuzzName$' -fuzztime 10m ./server/
fuzztime=${FUZZTIME:-4s}
for pkg in ./server ./sshbridge ./policy; do
	for target in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz'); do
		if ! out=$(go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg" 2>&1); then
			echo "$out" >&2
			exit 1
		fi
		echo "fuzz $pkg $target: ok ($fuzztime)"
	done
done

# One package at a time: the 200-client and bench suites measure a loaded
# 2-core machine poorly when every package runs at once.
go test -race -count=1 -p 1 -timeout 25m ./...
