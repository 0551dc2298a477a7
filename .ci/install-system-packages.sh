#!/usr/bin/env bash
# Installs the Debian packages the integration tests start as real servers (PostgreSQL 15,
# PgBouncer, Redis 7) and the image tests' builder (buildah, debootstrap), only when a binary
# is missing, so running it again does nothing.
# Nothing is started here: the test fixtures (tests/support/servers.py) start and stop them.
set -euo pipefail

missing=()
[ -x /usr/lib/postgresql/15/bin/initdb ] || missing+=(postgresql)
command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ] || missing+=(pgbouncer)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v buildah >/dev/null 2>&1 || missing+=(buildah)
command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || missing+=(debootstrap)

if [ ${#missing[@]} -eq 0 ]; then
  echo "system packages: postgresql, pgbouncer, redis-server, buildah and debootstrap are installed"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  SUDO=sudo
else
  SUDO=
fi
echo "system packages: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
# The downloaded .deb files are not needed once installed; CI machines can be short of disk.
$SUDO apt-get clean
