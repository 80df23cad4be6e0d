#!/usr/bin/env bash
# Installs the Debian packages the test suite starts on loopback: PostgreSQL, Redis, nginx,
# and Chromium for the browser tests (driven by Playwright, never a downloaded browser).
set -euo pipefail
need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v npm >/dev/null || need+=(npm)
if [ ${#need[@]} -eq 0 ]; then
  echo "test dependencies present"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "installing: ${need[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
# The Debian packages start their own services; the tests start private ones instead.
if [ -d /run/systemd/system ]; then
  $SUDO systemctl disable --now redis-server nginx postgresql >/dev/null 2>&1 || true
else
  for s in redis-server nginx postgresql; do $SUDO service "$s" stop >/dev/null 2>&1 || true; done
fi
