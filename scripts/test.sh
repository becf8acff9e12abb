#!/usr/bin/env bash
# Runs the whole test suite: static checks, then every Go test with the race
# detector, including the integration tests against a real OpenSSH sshd, the
# JS socket.io-client from npm, Python's socketio client and headless
# Chromium. Nothing is skipped: as root, what is missing is installed
# (Debian packages with apt-get, the Node clients with npm ci); otherwise the
# script stops and says what is missing. It shows each step, and each test
# package as it starts and ends.
set -euo pipefail
cd "$(dirname "$0")/.."

started=$SECONDS
step() { printf '\n== %s (%ds)\n' "$*" $((SECONDS - started)); }
die() {
	printf 'scripts/test.sh: %s\n' "$@" >&2
	exit 1
}

step "dependencies"
# Debian packages the integration tests need.
need=()
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v chromium >/dev/null || need+=(chromium)
/usr/bin/python3 -c 'import socketio, requests, websocket' 2>/dev/null || need+=(python3-socketio python3-requests python3-websocket)
command -v node >/dev/null && command -v npm >/dev/null || need+=(nodejs npm)
command -v redis-server >/dev/null || need+=(redis-server)
[ -x /usr/sbin/nginx ] || command -v nginx >/dev/null || need+=(nginx)
command -v promtool >/dev/null || need+=(prometheus)
if ((${#need[@]})); then
	if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
		die "missing: ${need[*]}" \
			"Run this script as root on Debian (it installs them), or install them yourself:" \
			"  apt-get install ${need[*]}"
	fi
	echo "installing ${need[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# sshd checks passwords and switches users, so the tests that run it need
# root.
[ "$(id -u)" = 0 ] || die "the integration tests run a real sshd, which needs root: run this script as root" \
	"(for example in a container). 'go test ./...' runs as any user and skips what it cannot run."

# The Node clients of the integration tests, exactly as locked.
if [ ! -d e2e/node_modules ] || [ e2e/package-lock.json -nt e2e/node_modules/.package-lock.json ]; then
	echo "npm ci --prefix e2e"
	npm ci --prefix e2e --no-audit --no-fund --loglevel=error
fi

step "gofmt, go vet, staticcheck"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './e2e/node_modules/*'))
if [ -n "$unformatted" ]; then
	die "gofmt would change: $unformatted"
fi
go vet ./...
go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

# Each fuzz target briefly, beyond its seed corpus (which the test run
# below replays too). The budget is a count of executions, not a duration:
# Go 1.26's fuzz coordinator can fail a target with a bare "context
# deadline exceeded" when a -fuzztime duration ends while a starved worker
# is mid-call (go.dev/issue/75804, fixed in Go 1.27); a count has no
# deadline to race. Longer runs: go test -run '^$' -fuzz '^FuzzName$' -fuzztime 10m ./server/
fuzztime=${FUZZTIME:-20000x}
step "fuzz targets, $fuzztime each"
for pkg in ./server ./sshbridge ./policy ./terminal; do
	for target in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz'); do
		if ! out=$(go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg" 2>&1); then
			echo "$out" >&2
			exit 1
		fi
		echo "fuzz $pkg $target: ok"
	done
done

# One package at a time: the 200-client and bench suites measure a loaded
# 2-core machine poorly when every package runs at once. CI=true makes a
# test fail, not skip, when something it needs is missing (see
# internal/testdeps).
step "go test -race, one package at a time"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/testprogress" ./internal/testprogress
CI=true go test -json -race -count=1 -p 1 -timeout 25m ./... 2>&1 |
	"$tmp/testprogress" -trim "$(go list -m)/"
step "all passed"
