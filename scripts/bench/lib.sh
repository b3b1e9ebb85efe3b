# Shared helpers for scripts/bench/*: sourced, not run.
# Each script sets `set -euo pipefail`, calls bench_init, and starts
# processes with bench_bg so that bench_cleanup (an EXIT trap) kills exactly
# the processes it started, by PID, and removes the temp directory.

BENCH_PIDS=()
BENCH_TMP=""
BENCH_KEEP="${KEEP:-}" # KEEP=1 keeps the temp directory for inspection

bench_cleanup() {
  local rc=$?
  local pid
  for pid in "${BENCH_PIDS[@]:-}"; do
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  done
  for pid in "${BENCH_PIDS[@]:-}"; do
    [ -n "$pid" ] || continue
    # bounded wait, then force
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  if [ -n "$BENCH_TMP" ] && [ -d "$BENCH_TMP" ]; then
    if [ -n "$BENCH_KEEP" ]; then
      echo "kept $BENCH_TMP" >&2
    else
      rm -rf "$BENCH_TMP"
    fi
  fi
  exit "$rc"
}

# bench_init NAME: temp dir, traps, repo root, swarmship binary in $SS
# (built from the repo, or copied from $SWARMSHIP_BIN).
bench_init() {
  BENCH_ROOT="$(cd "$(dirname "${BASH_SOURCE[1]}")/../.." && pwd)"
  BENCH_TMP="$(mktemp -d "/tmp/swarmship-bench-$1.XXXXXX")"
  if [ -n "${BENCH_NICE:-}" ]; then
    # BENCH_NICE=-10 (root): this script and everything it starts run at
    # that nice level, so that other jobs on a shared machine disturb the
    # figures less. Say so when you publish figures taken this way.
    renice -n "$BENCH_NICE" -p $$ >/dev/null
  fi
  BENCH_LOAD0="$(cut -d' ' -f1-3 /proc/loadavg)"
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
  SS="$BENCH_TMP/swarmship"
  if [ -n "${SWARMSHIP_BIN:-}" ]; then
    # a prebuilt binary (e.g. one built with profiling hooks)
    cp "$SWARMSHIP_BIN" "$SS"
  else
    (cd "$BENCH_ROOT" && go build -o "$SS" .)
  fi
}

# bench_bg LOG CMD...: start CMD in the background with output to LOG and
# remember its PID in $BENCH_LAST_PID (also registered for cleanup).
bench_bg() {
  local log="$1"
  shift
  "$@" >"$log" 2>&1 &
  BENCH_LAST_PID=$!
  BENCH_PIDS+=("$BENCH_LAST_PID")
}

# bench_stop PID: stop one process we started and wait for it (bounded).
bench_stop() {
  local pid="$1"
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# free_port: a free TCP port on 127.0.0.1 (racy, but fine on an idle box).
free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_until SECONDS DESCRIPTION CMD...: poll CMD every 0.1 s until it
# succeeds; fail the script after SECONDS.
wait_until() {
  local limit="$1" what="$2"
  shift 2
  local deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "timed out after ${limit}s waiting for $what" >&2
      return 1
    fi
    sleep 0.1
  done
}

# now_ns: wall clock in nanoseconds.
now_ns() { date +%s%N; }

# write_agent_yaml FILE CACHE CATALOG_URL ROOT TRACKER STATUS_PORT PEER_PORT GRACE SUBS...
write_agent_yaml() {
  local f="$1" cache="$2" url="$3" root="$4" tracker="$5" sport="$6" pport="$7" grace="$8"
  shift 8
  {
    echo "catalog:"
    echo "  url: $url"
    echo "  root: $root"
    [ -n "$tracker" ] && echo "tracker: $tracker"
    echo "site: bench"
    echo "region: lab"
    echo "cache_dir: $cache"
    echo "status: {addr: 127.0.0.1:$sport}"
    echo "swarm: {listen_host: 127.0.0.1, listen_port: $pport}"
    echo "offload: {startup_grace: $grace}"
    echo "subscriptions:"
    local s
    for s in "$@"; do
      echo "  - {name: $s, channel: stable}"
    done
  } >"$f"
}

# agent_all_active SS STATUS_PORT N: true when N releases are active.
agent_all_active() {
  local n
  n="$("$1" status --addr "127.0.0.1:$2" -o json 2>/dev/null | jq '[.releases[] | select(.state=="active")] | length')" || return 1
  [ "$n" -ge "$3" ]
}

# proc_cpu_ticks PID: utime+stime of PID in clock ticks.
proc_cpu_ticks() {
  awk '{print $14 + $15}' "/proc/$1/stat"
}

# machine_busy_start / machine_busy_pct: share of all CPUs busy (any
# process, kernel, steal) since the last machine_busy_start, from /proc/stat.
# Other jobs on the machine show up here; a bench result taken while this is
# far above what the bench itself uses is suspect.
machine_busy_start() {
  read -r _ u n s i w irq sirq st _ </proc/stat
  BENCH_BUSY0=$((u + n + s + irq + sirq + st))
  BENCH_ALL0=$((u + n + s + irq + sirq + st + i + w))
}
machine_busy_pct() {
  local u n s i w irq sirq st
  read -r _ u n s i w irq sirq st _ </proc/stat
  local busy=$((u + n + s + irq + sirq + st)) all=$((u + n + s + irq + sirq + st + i + w))
  echo $((100 * (busy - BENCH_BUSY0) / (all - BENCH_ALL0 + 1)))
}

# wait_quiet [MAX_S]: before a measured phase, wait (at most MAX_S, default
# $QUIET_WAIT or 20 s; 0 skips) until the whole machine is at most
# $QUIET_PCT % busy (default 20) over 2 s. Other jobs on a 2-core machine
# decide a throughput or tail-latency figure, so a bench that could not get a
# quiet machine says so (BENCH_NOISY=1, and a warning on stderr).
BENCH_NOISY=0
wait_quiet() {
  local max="${1:-${QUIET_WAIT:-20}}" pct="${QUIET_PCT:-20}" b
  [ "$max" -gt 0 ] || return 0
  local deadline=$((SECONDS + max))
  while :; do
    machine_busy_start
    sleep 2
    b="$(machine_busy_pct)"
    if [ "$b" -le "$pct" ]; then return 0; fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "WARNING: the machine is still $b% busy with other work after ${max}s; the next figure is affected" >&2
      BENCH_NOISY=1
      return 0
    fi
  done
}

# bench_note: one line on the conditions of the run, for the report.
bench_note() {
  echo "conditions: $(date -u +%Y-%m-%dT%H:%MZ), nice $(ps -o ni= -p $$ | tr -d ' '), load average at start $BENCH_LOAD0, $(nproc) CPUs"
}
