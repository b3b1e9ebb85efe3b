// Package packaging holds no code: its directory has what operators install
// (systemd units and timers, the nfpm configuration that scripts/package
// builds the .deb and .rpm from, example configs, Prometheus alert rules and
// a Grafana dashboard), and its tests check those files against the real
// programs: the built packages with dpkg-deb, rpm and systemd-analyze, the
// metrics the rules and dashboard use against docs/metrics.md and a running
// origin's and agent's /metrics.
package packaging
