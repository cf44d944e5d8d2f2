#!/usr/bin/env bash
# Install the Debian packages the product (run) or the test suite (test) needs, when missing.
# Nothing under /etc is configured: podman is pointed at deploy/local/containers.conf instead.
set -euo pipefail

profile="${1:-run}"
need=()
have() { command -v "$1" >/dev/null 2>&1; }

have podman || need+=(podman)
have runc || need+=(runc)
# deploy/local/containers.conf picks netavark as Podman's network backend.
[ -x /usr/lib/podman/netavark ] || need+=(netavark)
[ -x /usr/lib/podman/aardvark-dns ] || need+=(aardvark-dns)
# Netavark writes its firewall rules with the iptables command (CNI's plugins pulled it in).
[ -x /usr/sbin/iptables ] || need+=(iptables)
# The demo image (deploy/local/demo-image) is built offline from busybox-static.
dpkg -s busybox-static >/dev/null 2>&1 || need+=(busybox-static)
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
if [ "$profile" = test ]; then
  # The suite runs the catalog against a throwaway PostgreSQL cluster of its own.
  have initdb || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
  # The console's browser tests drive Debian's Chromium through Playwright (no browser download).
  [ -x /usr/bin/chromium ] || need+=(chromium)
  # deploy/observability/ is checked by promtool and scraped by a real Prometheus.
  have promtool || need+=(prometheus)
fi
if [ "$profile" = bench ]; then
  have nginx || need+=(nginx-light)
  have wrk || need+=(wrk)
fi

if [ ${#need[@]} -gt 0 ]; then
  echo "installing system packages: ${need[*]}"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
