#!/usr/bin/env bash
# Installs the Debian packages the test suite and `make bench` drive (real clients, real peers,
# load generators), only those that are missing, so a second run costs nothing.
set -euo pipefail

# command -> Debian package
declare -A wanted=(
  [skopeo]=skopeo
  [podman]=podman
  [buildah]=buildah
  [umoci]=umoci
  [busybox]=busybox-static
  [runc]=runc
  [docker-registry]=docker-registry
  [zstd]=zstd
  [redis-server]=redis-server
  [postgresql]=postgresql
  [wrk]=wrk
  [ab]=apache2-utils
  [chromium]=chromium
  [npm]=npm
  [prometheus]=prometheus
  [debootstrap]=debootstrap
  [haproxy]=haproxy
  [slapd]=slapd
  [ldapmodify]=ldap-utils
  # the scanner's inventory tests build a Go binary and an rpm database with the real tools
  [go]=golang-go
  [rpmbuild]=rpm
)
missing=()
for cmd in "${!wanted[@]}"; do
  if [ "$cmd" = busybox ] || [ "$cmd" = postgresql ] || [ "$cmd" = slapd ]; then
    dpkg -s "${wanted[$cmd]}" >/dev/null 2>&1 || missing+=("${wanted[$cmd]}")
  elif ! command -v "$cmd" >/dev/null 2>&1; then
    missing+=("${wanted[$cmd]}")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "installing system packages: ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" uidmap >/dev/null
# The tests start their own Prometheus on a loopback port; the package's service (started on
# a systemd host, listening on every address) is not wanted.
if [[ " ${missing[*]} " == *" prometheus "* ]] && [ -d /run/systemd/system ]; then
  $SUDO systemctl disable --now prometheus.service >/dev/null 2>&1 || true
fi
# The tests start their own slapd on a loopback port with a configuration of their own; the
# package's service (which Debian starts on install, on every address) is not wanted.
if [[ " ${missing[*]} " == *" slapd "* ]] && [ -d /run/systemd/system ]; then
  $SUDO systemctl disable --now slapd.service >/dev/null 2>&1 || true
fi
