#!/usr/bin/env bash
# The README's test command. On a fresh machine it installs what the tests
# run against (Debian BitTorrent clients and python3-libtorrent, the
# versitygw S3 server, staticcheck, chromium for the dashboard test, redis-server
# for origins that share state, node and npm for
# tuf-js, zsync and rsync for the delta benchmark, ffmpeg for test media,
# tcpdump for DSCP captures), then runs go vet, staticcheck, a gofmt check and the whole suite
# with the race detector. With CI=true a missing tool fails a test instead of
# skipping it.
set -euo pipefail
cd "$(dirname "$0")/.."

tools="${SWARMSHIP_TOOLS:-$PWD/.tools}"
mkdir -p "$tools"
export SWARMSHIP_TOOLS="$tools"
export PATH="$tools:$PATH"

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi

need=()
command -v aria2c >/dev/null || need+=(aria2)
command -v mktorrent >/dev/null || need+=(mktorrent)
command -v transmission-daemon >/dev/null || need+=(transmission-daemon transmission-cli)
command -v qbittorrent-nox >/dev/null || need+=(qbittorrent-nox)
/usr/bin/python3 -c 'import libtorrent' >/dev/null 2>&1 || need+=(python3-libtorrent)
command -v chromium >/dev/null || need+=(chromium)
# redis-server is the shared state of several origins (internal/state).
command -v redis-server >/dev/null || need+=(redis-server)
# node and npm run tuf-js, an independent TUF client (interop/tufjs_test.go
# installs it from interop/testdata/tufjs's lock into $SWARMSHIP_TOOLS).
command -v npm >/dev/null || need+=(nodejs npm)
# nft builds the masquerading routers of the NAT tests (internal/testenv/nat.go).
command -v nft >/dev/null || [ -x /usr/sbin/nft ] || need+=(nftables)
# zsync and rsync are the single-machine delta tools that the delta
# benchmark (scripts/bench/delta) compares publish and delivery with.
command -v zsyncmake >/dev/null || need+=(zsync)
command -v rsync >/dev/null || need+=(rsync)
# ffmpeg generates the test media (HLS/DASH renditions, watermark variants);
# media is never downloaded.
command -v ffmpeg >/dev/null || need+=(ffmpeg)
# jq adds the media player's result to the testbed's JSON (MEDIA=1).
command -v jq >/dev/null || need+=(jq)
# tcpdump captures peer packets in a namespace to check their DSCP marks.
command -v tcpdump >/dev/null || [ -x /usr/sbin/tcpdump ] || need+=(tcpdump)
# rpm reads the built .rpm's header and files (packaging/package_test.go);
# dpkg-deb and systemd-analyze check the .deb and its units.
command -v rpm >/dev/null || need+=(rpm)
command -v dpkg-deb >/dev/null || need+=(dpkg)
command -v systemd-analyze >/dev/null || need+=(systemd)
if [ "${#need[@]}" -gt 0 ]; then
  echo "test.sh: installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  if ! $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null; then
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
fi

if [ ! -x "$tools/versitygw" ]; then
  echo "test.sh: installing versitygw v1.8.0" >&2
  GOBIN="$tools" go install github.com/versity/versitygw/cmd/versitygw@v1.8.0
fi
if [ ! -x "$tools/staticcheck" ] || ! "$tools/staticcheck" -version | grep -q '(0.8.2)'; then
  echo "test.sh: installing staticcheck v0.8.2" >&2
  GOBIN="$tools" go install honnef.co/go/tools/cmd/staticcheck@v0.8.2
fi

echo "test.sh: go vet" >&2
go vet ./...
echo "test.sh: staticcheck" >&2
"$tools/staticcheck" ./...
unformatted="$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.tools/*'))"
if [ -n "$unformatted" ]; then
  echo "test.sh: gofmt would change:" >&2
  echo "$unformatted" >&2
  exit 1
fi
echo "test.sh: go test -race" >&2
go test -race -count=1 -timeout 25m ./...
