#!/bin/sh
# After removal or upgrade: systemd forgets the removed units. The user,
# /etc/swarmship and /var/lib/swarmship (caches, state, keys) are kept: delete
# them by hand if the host is done with swarmship.
set -e
if [ -z "${DPKG_ROOT:-}" ] && [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
fi
exit 0
