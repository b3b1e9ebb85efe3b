#!/bin/sh
# After install or upgrade (deb: "configure"; rpm: 1 or 2). Creates the
# swarmship user and /etc/swarmship; enables nothing: the operator writes the
# configuration first (docs/operations.md). Every path is under $DPKG_ROOT,
# which dpkg sets for `dpkg --root` installs (empty otherwise): the package
# test installs into a temporary root that way.
set -e
root="${DPKG_ROOT:-}"

if command -v systemd-sysusers >/dev/null 2>&1; then
	systemd-sysusers --root="${root:-/}" "$root/usr/lib/sysusers.d/swarmship.conf"
elif ! grep -q '^swarmship:' "$root/etc/passwd" 2>/dev/null; then
	useradd ${root:+--root "$root"} --system --user-group --home-dir /var/lib/swarmship \
		--no-create-home --shell /usr/sbin/nologin --comment "swarmship agent and origin" swarmship
fi
# Numeric ids from the root's own files (names would resolve on the host).
uid="$(awk -F: '$1 == "swarmship" { print $3 }' "$root/etc/passwd")"
gid="$(awk -F: '$1 == "swarmship" { print $3 }' "$root/etc/group")"
if [ -z "$uid" ] || [ -z "$gid" ]; then
	echo "swarmship: the swarmship user was not created" >&2
	exit 1
fi

# Configuration, tokens and keys: readable by the service, not by everyone.
# Left alone when it exists (the operator may have changed it).
if [ ! -d "$root/etc/swarmship" ]; then
	install -d -o 0 -g "$gid" -m 0750 "$root/etc/swarmship"
fi
if [ ! -d "$root/var/lib/swarmship" ]; then
	install -d -o "$uid" -g "$gid" -m 0750 "$root/var/lib/swarmship"
fi

if [ -z "$root" ] && [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
	# An upgrade restarts what runs (not what is stopped or disabled).
	systemctl try-restart swarmship-agent.service swarmship-origin.service >/dev/null 2>&1 || true
fi
exit 0
