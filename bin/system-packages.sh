#!/usr/bin/env bash
# Installs the Debian packages named as arguments where they are missing, e.g.
#   bin/system-packages.sh mosquitto npm redis-server   (the product: MQTT broker, chart build, Celery broker)
#   bin/system-packages.sh chromium           (the browser tests)
# Needs root, as on this project's machines.
set -euo pipefail

present() {
  case "$1" in
    mosquitto) command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] ;;
    chromium) [ -x /usr/bin/chromium ] ;;
    npm) command -v npm >/dev/null 2>&1 ;;
    redis-server) command -v redis-server >/dev/null 2>&1 ;;
    *) dpkg -s "$1" >/dev/null 2>&1 ;;
  esac
}

missing=()
for package in "$@"; do
  present "$package" || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "Installing Debian packages: ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "Not root: install them yourself with: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
