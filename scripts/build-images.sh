#!/usr/bin/env bash
# Builds the local test images. No registry is reachable on the machines this project
# is tested on, so the base image comes from debootstrap and every later image is built
# FROM it. Each image is labelled with a hash of its inputs and rebuilt only when they change.
set -euo pipefail
cd "$(dirname "$0")/.."

# `make test`'s lanes ask for images at the same time. One build runs at a time: a caller
# whose image is being built waits for the lock and then finds it current, and one whose image
# is already current does not wait for another image's build.
exec 9>"${TMPDIR:-/tmp}/acc-build-images.lock"

mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
ca_bundle=${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}

inputs_hash() { cat "$@" | sha256sum | cut -c1-16; }

image_is_current() { # image, hash
  [ "$(docker image inspect -f '{{ index .Config.Labels "acc.inputs" }}' "$1" 2>/dev/null)" = "$2" ]
}

# Whether the image must be built; if so, returns holding the build lock (released on exit).
needs_build() { # image, hash
  if image_is_current "$1" "$2"; then echo "image $1 is current"; return 1; fi
  flock 9
  if image_is_current "$1" "$2"; then echo "image $1 is current"; flock -u 9; return 1; fi
}

# `make test` prints every build's wall time at its end (scripts/times_table.py).
# The Makefile names the file for every target, so `make images` or `make demo` on a fresh
# clone, before any `make test`, makes its folder here.
record_time() { # image, start time in seconds
  [ -z "${ACC_TIMES:-}" ] || mkdir -p "$(dirname "$ACC_TIMES")"
  [ -z "${ACC_TIMES:-}" ] || printf 'image %s\tbuild\t%s\n' "$1" $(( $(date +%s) - $2 )) >> "$ACC_TIMES"
}

# Airflow 1.10 and 2.0-2.2 do not install on bookworm's Python 3.11; they run on bullseye's 3.9.
suite_of() { case $1 in 1.*|2.[0-2].*) echo bullseye ;; *) echo bookworm ;; esac; }

build_base() { # suite
  local suite=$1 base=acc-base:$1 hash started
  hash=$(echo "$suite $mirror" | cat - images/base/packages | sha256sum | cut -c1-16)
  needs_build "$base" "$hash" || return 0
  started=$(date +%s)
  if ! command -v debootstrap >/dev/null; then
    # A workstation without debootstrap can usually reach a registry instead.
    echo "building $base FROM debian:$suite (no debootstrap here; needs a reachable registry)"
    printf 'FROM debian:%s\nRUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq %s && rm -rf /var/lib/apt/lists/*\nENV container=docker\nCMD ["/lib/systemd/systemd"]\n' \
      "$suite" "$(grep -v '^#' images/base/packages | paste -sd' ' -)" \
      | docker build -q --label "acc.inputs=$hash" -t "$base" - >/dev/null
    record_time "$base" "$started"
    flock -u 9
    return
  fi
  echo "building $base with debootstrap (1 to 5 minutes)"
  local root
  root=$(mktemp -d)
  debootstrap --variant=minbase --include="$(grep -v '^#' images/base/packages | paste -sd, -)" \
    "$suite" "$root" "$mirror" >/dev/null
  # An empty machine-id lets systemd make one per container at boot.
  : > "$root/etc/machine-id"
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/archives/*.deb
  tar -C "$root" -c . | docker import \
    -c 'CMD ["/lib/systemd/systemd"]' -c 'ENV container=docker' \
    -c "LABEL acc.inputs=$hash" - "$base" >/dev/null
  rm -rf "$root"
  record_time "$base" "$started"
  flock -u 9
}

build_from_dir() { # name, suite, dir, files the image depends on (space-separated), extra build args...
  local name=$1 base=acc-base:$2 dir=$3 files=$4 hash ctx started
  shift 4
  hash=$(inputs_hash $files <(docker image inspect -f '{{.Id}}' "$base") <(echo "$*"))
  needs_build "$name" "$hash" || return 0
  echo "building $name"
  started=$(date +%s)
  ctx=$(mktemp -d)
  cp -r "$dir"/. "$ctx"/
  # pip in a container needs the host's CA bundle where TLS is inspected; without one on
  # the host, the image uses its own (empty file here).
  if [ -f "$ca_bundle" ]; then cp "$ca_bundle" "$ctx/ca-bundle.crt"; else : > "$ctx/ca-bundle.crt"; fi
  docker build -q --pull=false --label "acc.inputs=$hash" --build-arg "BASE=$base" "$@" -t "$name" "$ctx" >/dev/null
  rm -rf "$ctx"
  record_time "$name" "$started"
  flock -u 9
}

build_base bookworm
build_from_dir acc-services:bookworm bookworm images/services images/services/Dockerfile
w=images/worker
for version in ${ACC_AIRFLOW_VERSIONS:-3.3.2}; do
  suite=$(suite_of "$version")
  if [ "$suite" = bookworm ]; then
    build_from_dir "acc-worker:airflow-${version}" bookworm $w "$w/Dockerfile $w/requirements-${version}.txt $w/constraints-${version}.txt" \
      --build-arg "AIRFLOW_VERSION=${version}"
  else
    build_base "$suite"
    build_from_dir "acc-worker:airflow-${version}" "$suite" $w "$w/Dockerfile.$suite $w/requirements-${version}.txt $w/constraints-${version}.txt" \
      -f "$w/Dockerfile.$suite" --build-arg "AIRFLOW_VERSION=${version}"
  fi
done
