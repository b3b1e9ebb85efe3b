#!/bin/sh
# Before removal. deb passes "remove" (also "upgrade" on upgrades); rpm passes
# the number of versions left after the operation: 0 on removal, 1 on upgrade.
# Units are stopped and disabled only on removal; data stays. Nothing to do
# for a `dpkg --root` install ($DPKG_ROOT set): no systemd runs there.
set -e
case "$1" in
remove | 0) ;;
*) exit 0 ;;
esac
if [ -z "${DPKG_ROOT:-}" ] && [ -d /run/systemd/system ]; then
	systemctl disable --now swarmship-agent.service swarmship-origin.service \
		swarmship-sync.timer swarmship-resign.timer >/dev/null 2>&1 || true
fi
exit 0
