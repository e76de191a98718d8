#!/usr/bin/env bash
# Installs the Debian packages the test suite drives for real. Runs apt only when
# something is missing, and only as root; otherwise says what to install.
set -euo pipefail
# chromium: browser tests; postfix + swaks: real SMTP clients and a relay in front of the
# listener (libnet-ssleay-perl: swaks --tls); dovecot: a real IMAP/POP3 server;
# slapd + ldap-utils: a real LDAP directory; notmuch: the benchmark's peer.
# Tests start their own instances of the servers.
packages=(chromium chromium-driver postfix swaks libnet-ssleay-perl dovecot-imapd dovecot-pop3d slapd ldap-utils notmuch)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "The tests need these Debian packages: ${missing[*]} (run as root, or install them)." >&2
  [ "${CI:-}" = "true" ] && exit 1
  exit 0
fi
echo "Installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The packaged daemons are not needed as services; tests run their own instances.
for svc in postfix dovecot slapd; do
  systemctl disable --now "$svc" >/dev/null 2>&1 || service "$svc" stop >/dev/null 2>&1 || true
done
