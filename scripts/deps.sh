#!/usr/bin/env bash
# deps.sh installs the programs fcgigate's tests, demo and benchmarks run:
# php-fpm and php-cli 8.2, nginx (with its stream module, the bench's TCP relay), wrk, Apache httpd 2.4, cgi-fcgi and iptables
# (the cluster tests cut gateways off with it), from
# Debian 12's apt repositories. It is idempotent: when everything is there it
# only checks and exits. It never starts the system services of these packages
# (tests start their own processes on loopback addresses): while apt runs, a
# policy-rc.d that denies every service start is in place.
#
# Needs root (or sudo) only when something must be installed.
set -euo pipefail

PACKAGES=(php8.2-fpm php8.2-cli nginx libnginx-mod-stream wrk apache2 libfcgi-bin iptables)
POLICY=/usr/sbin/policy-rc.d

log() { printf 'deps: %s\n' "$*"; }
die() { printf 'deps: error: %s\n' "$*" >&2; exit 1; }

installed() { # installed PKG: is PKG fully installed according to dpkg?
	[ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = installed ]
}

command -v dpkg-query >/dev/null || die "dpkg-query not found: this script supports Debian 12 (bookworm) only"

missing=()
for p in "${PACKAGES[@]}"; do
	installed "$p" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
	log "all present: ${PACKAGES[*]}"
else
	log "missing: ${missing[*]}"
	SUDO=()
	if [ "$(id -u)" -ne 0 ]; then
		command -v sudo >/dev/null || die "need root to install ${missing[*]}; run as root or install sudo"
		SUDO=(sudo)
		log "not root: using sudo"
	fi

	# Keep apt from starting apache2, nginx and php8.2-fpm. A policy-rc.d
	# already present is left alone; one we create is removed on exit.
	if [ ! -e "$POLICY" ]; then
		log "creating $POLICY (exit 101) so apt starts no services"
		printf '#!/bin/sh\n# created by fcgigate scripts/deps.sh; removed when it ends\nexit 101\n' |
			"${SUDO[@]}" tee "$POLICY" >/dev/null
		"${SUDO[@]}" chmod 755 "$POLICY"
		trap 'log "removing $POLICY"; "${SUDO[@]}" rm -f "$POLICY"' EXIT
	else
		log "$POLICY exists; leaving it in place"
	fi

	APT=(env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300)
	log "apt-get update"
	"${SUDO[@]}" "${APT[@]}" update ||
		die "apt-get update failed (no network, or a broken sources.list?)"
	log "apt-get install ${PACKAGES[*]}"
	"${SUDO[@]}" "${APT[@]}" install -y --no-install-recommends "${PACKAGES[@]}" ||
		die "apt-get install ${PACKAGES[*]} failed"

	for p in "${PACKAGES[@]}"; do
		installed "$p" || die "$p is still not installed after apt-get install"
	done
	log "installed: ${missing[*]}"
fi

# The binaries the tests look for. php-fpm and apache2 live in /usr/sbin,
# which a non-root $PATH may lack.
for bin in php-fpm8.2 php8.2 nginx wrk apache2 cgi-fcgi; do
	found=$(PATH="$PATH:/usr/sbin:/sbin" command -v "$bin") || die "$bin not found although its package is installed"
	log "found $found"
done

command -v go >/dev/null || log "warning: go not in PATH; fcgigate needs Go 1.26 (not installed by this script)"
exit 0
