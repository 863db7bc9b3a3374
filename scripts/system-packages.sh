#!/usr/bin/env bash
# Installs the programs the tests and the demo run for real, where they are missing:
# redis-server, promtool/prometheus, alertmanager/amtool, haproxy, docker-compose (config checks only),
# chromium (the pages' tests load them in a headless browser).
set -euo pipefail

need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v promtool >/dev/null || need+=(prometheus)
command -v amtool >/dev/null || need+=(prometheus-alertmanager)
command -v haproxy >/dev/null || need+=(haproxy)
command -v docker-compose >/dev/null || need+=(docker-compose)
command -v chromium >/dev/null || need+=(chromium)

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then
    SUDO=sudo
  else
    echo "missing: ${need[*]} (install them with apt-get as root)" >&2
    exit 1
  fi
else
  SUDO=
fi
echo "installing ${need[*]}" >&2
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${need[@]}"
# Debian starts the services it installs; the project starts its own, on its own ports.
for svc in redis-server prometheus prometheus-alertmanager haproxy; do
  $SUDO systemctl stop "$svc" >/dev/null 2>&1 || $SUDO service "$svc" stop >/dev/null 2>&1 || true
done
