#!/bin/sh
# After install or upgrade (deb: "configure"; rpm: 1 or 2). Creates the
# swarmship user and /etc/swarmship; enables nothing: the operator writes the
# configuration first (docs/operations.md).
set -e

if command -v systemd-sysusers >/dev/null 2>&1; then
	systemd-sysusers /usr/lib/sysusers.d/swarmship.conf
elif ! getent passwd swarmship >/dev/null 2>&1; then
	useradd --system --user-group --home-dir /var/lib/swarmship --no-create-home \
		--shell /usr/sbin/nologin --comment "swarmship agent and origin" swarmship
fi

# Configuration, tokens and keys: readable by the service, not by everyone.
# Left alone when it exists (the operator may have changed it).
if [ ! -d /etc/swarmship ]; then
	install -d -o root -g swarmship -m 0750 /etc/swarmship
fi
if [ ! -d /var/lib/swarmship ]; then
	install -d -o swarmship -g swarmship -m 0750 /var/lib/swarmship
fi

if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
	# An upgrade restarts what runs (not what is stopped or disabled).
	systemctl try-restart swarmship-agent.service swarmship-origin.service >/dev/null 2>&1 || true
fi
exit 0
