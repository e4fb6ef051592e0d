#!/usr/bin/env bash
# Installs what `make demo` and `make test` need, where it is missing: on a fresh Debian 12
# machine as root the container engine and debootstrap; everywhere the Python venv.
# On a workstation with Docker already running, only the venv is made.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! docker info >/dev/null 2>&1; then
  if ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null; then
    [ "$(id -u)" = 0 ] || { echo "Docker is not running and installing it needs root" >&2; exit 1; }
    echo "installing docker.io and debootstrap from Debian"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io debootstrap >/dev/null
  fi
  if ! docker info >/dev/null 2>&1; then
    echo "starting dockerd"
    if command -v systemctl >/dev/null && systemctl start docker 2>/dev/null; then :; else
      nohup dockerd >/var/log/dockerd.log 2>&1 &
    fi
    for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
    docker info >/dev/null 2>&1 || { echo "dockerd did not start; see /var/log/dockerd.log" >&2; exit 1; }
  fi
fi
# Each systemd container holds about 7 inotify instances of the host's root user; with the
# kernel's default of 128, the 19th one's systemd hangs in "initializing" (seen with the
# fleet benchmark, and with scenarios side by side). Raise it where we may.
if [ "$(id -u)" = 0 ] && [ "$(cat /proc/sys/fs/inotify/max_user_instances 2>/dev/null || echo 512)" -lt 512 ]; then
  sysctl -q -w fs.inotify.max_user_instances=512 || echo "could not raise fs.inotify.max_user_instances; large fleets may hang" >&2
fi
# The base image is made with debootstrap where no registry is reachable; without it (and
# without root to install it) scripts/build-images.sh builds FROM debian:bookworm instead.
if ! command -v debootstrap >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing debootstrap from Debian"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi

scripts/venv.sh
.venv/bin/ansible-galaxy collection install -r requirements.yml >/dev/null
