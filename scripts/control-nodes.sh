#!/usr/bin/env bash
# The control nodes the tests run the role from: one per ansible-core release users run,
# 2.14 through 2.21. Each is ansible-core in its own venv plus the collections that the
# PyPI `ansible` release of the same core bundles, taken from that release's wheel: the
# tests reach their containers through community.docker (the role itself needs only
# ansible-core). The other ~90 bundled collections play no part, and leaving them out
# makes a control node cost about 10 s instead of about 70 s (docs/testing.md: Control nodes).
# `debian12` is Debian 12's own `ansible` package (apt, with Debian's Python libraries and its
# bundled collections) in a bookworm container.
#
#   scripts/control-nodes.sh list [--all]         the control nodes, one a line: `debian12`,
#                                                 then the `ansible` releases; without --all
#                                                 not the one in requirements.txt (the tools'
#                                                 own control node, which every scenario
#                                                 already runs)
#   scripts/control-nodes.sh prepare [VERSION...] make the venvs (cached, in parallel)
#   scripts/control-nodes.sh describe [VERSION...] what each prepared one runs
#   scripts/control-nodes.sh run VERSION CMD ARGS run CMD (ansible-playbook, ...) from one
#
# Each control node lives under .cache/control-nodes/ansible-VERSION/ and is reused while
# its inputs stay the same. ansible-core 2.20+ needs Python 3.12+: a python3.13 or
# python3.12 on the host serves (pyenv's too); without one, those control nodes run in a
# Debian trixie container (debootstrap, Python 3.13, the host's docker socket).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
cache=$repo/.cache/control-nodes
ca_bundle=${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}
trixie_image=acc-control:trixie

# `ansible` release: the newest of each major, with the ansible-core it pins.
releases=(7.7.0 8.7.0 9.13.0 10.7.0 11.13.0 12.3.0 13.8.0 14.5.0)
# The collections taken from each release's wheel.
collections=(community/general community/docker ansible/posix)

is_debian() { [ "$1" = debian12 ]; }
needs_new_python() { ! is_debian "$1" && [ "${1%%.*}" -ge 13 ]; }

# Debian 12's own control node: `apt install ansible` in a bookworm container.
debian_image=acc-control:bookworm-apt
debian_collections=/usr/lib/python3/dist-packages

new_python() { # a host Python >= 3.12, or nothing (ACC_CONTROL_NODE_CONTAINER=1: nothing)
  local p
  [ "${ACC_CONTROL_NODE_CONTAINER:-0}" = 1 ] && return
  for p in python3.13 python3.12 "$HOME"/.pyenv/versions/3.13*/bin/python3.13 "$HOME"/.pyenv/versions/3.12*/bin/python3.12; do
    # The interpreter itself, not a shim: the same path whatever PATH the caller has.
    if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import sys, venv; assert sys.version_info >= (3, 12)' 2>/dev/null; then
      "$p" -c 'import sys; print(sys.executable)'; return
    fi
  done
}

trixie_image_build() {
  local hash root
  hash=$(echo "trixie python3 python3-venv docker-cli ca-certificates" | sha256sum | cut -c1-16)
  if [ "$(docker image inspect -f '{{ index .Config.Labels "acc.inputs" }}' "$trixie_image" 2>/dev/null)" = "$hash" ]; then return; fi
  echo "building $trixie_image with debootstrap (no Python 3.12+ on this host)"
  root=$(mktemp -d)
  debootstrap --variant=minbase --include=python3,python3-venv,docker-cli,ca-certificates \
    trixie "$root" "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" >/dev/null
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/archives/*.deb
  tar -C "$root" -c . | docker import -c "LABEL acc.inputs=$hash" - "$trixie_image" >/dev/null
  rm -rf "$root"
}

debian_image_build() {
  local hash base=acc-base:bookworm
  docker image inspect "$base" >/dev/null 2>&1 \
    || { echo "control node debian12 is built FROM $base: run scripts/build-images.sh first" >&2; exit 2; }
  hash=$( (echo "ansible ca-certificates"; docker image inspect -f '{{.Id}}' "$base") | sha256sum | cut -c1-16)
  if [ "$(docker image inspect -f '{{ index .Config.Labels "acc.inputs" }}' "$debian_image" 2>/dev/null)" = "$hash" ]; then return; fi
  # apt, not debootstrap --include: debootstrap does not resolve the virtual packages
  # ansible-core's python3-cryptography needs.
  echo "building $debian_image FROM $base (Debian 12's ansible package)"
  printf 'FROM %s\nRUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ansible ca-certificates >/dev/null && rm -rf /var/lib/apt/lists/*\n' "$base" \
    | docker build -q --pull=false --label "acc.inputs=$hash" -t "$debian_image" - >/dev/null
}

# Runs a command on the control node's Python: on the host, or in the trixie or bookworm
# container with this repository, the cache and the Molecule inventories at the same paths.
in_node() { # version, command...
  local version=$1 image=; shift
  if is_debian "$version"; then image=$debian_image
  elif needs_new_python "$version" && [ -z "$(new_python)" ]; then image=$trixie_image
  fi
  if [ -z "$image" ]; then "$@"; return; fi
  local mounts=(-v "$repo:$repo" -v /var/run/docker.sock:/var/run/docker.sock)
  # Molecule keeps its inventories under ~/.ansible/tmp.
  [ -d "$HOME/.ansible/tmp" ] && mounts+=(-v "$HOME/.ansible/tmp:$HOME/.ansible/tmp")
  [ -f "$ca_bundle" ] && mounts+=(-v "$ca_bundle:/etc/acc-ca-bundle.crt:ro")
  # bookworm has no docker CLI package of its own: the host's CLI, for community.docker.
  is_debian "$version" && mounts+=(-v "$(command -v docker):/usr/bin/docker:ro")
  docker run -i --rm --pull never --network host "${mounts[@]}" -w "$PWD" \
    -e HOME=/root -e PIP_CERT=/etc/acc-ca-bundle.crt $(env | grep -o '^ANSIBLE_[A-Z_]*' | sed 's/^/-e /') \
    "$image" "$@"
}

describe() { # version: what the control node runs
  local dir=$cache/ansible-$1 python root
  python=$dir/venv/bin/python root=$dir
  if is_debian "$1"; then python=python3 root=$debian_collections; fi
  in_node "$1" "$python" - "$1" "$root" "${collections[@]}" <<'PY' 2>/dev/null || true
import json, sys
import ansible.release
version, root, names = sys.argv[1], sys.argv[2], sys.argv[3:]
found = [n.replace("/", ".") + " " + json.load(open(f"{root}/ansible_collections/{n}/MANIFEST.json"))["collection_info"]["version"] for n in names]
print(f"control node ansible {version}: ansible-core {ansible.release.__version__}, " + ", ".join(found))
PY
}

prepare_one() { # version
  local version=$1 dir=$cache/ansible-$1 wheel core python stamp
  if is_debian "$version"; then
    debian_image_build
    mkdir -p "$dir/tmp" "$dir/home"
    echo "$version $debian_image" > "$dir/ready"
    describe "$version"
    return
  fi
  python=python3
  if needs_new_python "$version"; then python=$(new_python); python=${python:-$trixie_image}; fi
  # A venv works only on the Python that made it: the stamp names it.
  stamp="$version ${collections[*]} $python"
  if [ -f "$dir/ready" ] && [ "$(cat "$dir/ready")" = "$stamp" ]; then return; fi
  rm -rf "$dir"; mkdir -p "$dir/wheel"
  # The wheel is pure Python; --python-version lets a 3.11 pip fetch the 3.12+ releases.
  pip download -q --disable-pip-version-check --no-deps --only-binary=:all: --python-version 3.13 -d "$dir/wheel" "ansible==$version" 2>&1 | { grep -v "^WARNING: Location" || true; }
  wheel=$(ls "$dir"/wheel/ansible-"$version"-*.whl)
  core=$(unzip -p "$wheel" "ansible-$version.dist-info/METADATA" | sed -n 's/^Requires-Dist: \(ansible-core.*\)$/\1/p' | tr -d ' ')
  (cd "$dir" && unzip -q "$wheel" $(printf 'ansible_collections/%s/* ' "${collections[@]}"))
  rm -rf "$dir/wheel"
  [ "$python" = "$trixie_image" ] && python=python3
  in_node "$version" "$python" -m venv "$dir/venv"
  in_node "$version" "$dir/venv/bin/pip" install -q --disable-pip-version-check "$core" 2>&1 | { grep -v "^WARNING: Location" || true; }
  echo "$stamp" > "$dir/ready"
  describe "$version"
}

case ${1:-} in
  list)
    own=$(sed -n 's/^ansible==//p' requirements.txt)
    echo debian12
    for version in "${releases[@]}"; do
      if [ "${2:-}" = --all ] || [ "$version" != "$own" ]; then echo "$version"; fi
    done
    ;;
  prepare)
    shift
    [ $# -gt 0 ] || set -- debian12 "${releases[@]}"
    # make test prepares them in its image lane while molecule/native may ask for them: one at a
    # time, so the second finds them ready instead of making them again beside the first.
    mkdir -p "$cache"
    exec 9>"$cache/.lock"
    flock 9
    for version in "$@"; do
      if needs_new_python "$version" && [ -z "$(new_python)" ]; then trixie_image_build; break; fi
    done
    # Built here, not in the parallel loop below: a debootstrap needs the machine to itself.
    for version in "$@"; do is_debian "$version" && debian_image_build; done
    # Two at a time: each is mostly download, unzip and pip, on a 2-core machine.
    pids=()
    for version in "$@"; do
      prepare_one "$version" & pids+=($!)
      if [ ${#pids[@]} -ge 2 ]; then wait "${pids[0]}"; pids=("${pids[@]:1}"); fi
    done
    for pid in "${pids[@]}"; do wait "$pid"; done
    ;;
  describe)
    shift
    [ $# -gt 0 ] || set -- $("$0" list --all)
    for version in "$@"; do [ -f "$cache/ansible-$version/ready" ] && describe "$version"; done
    ;;
  run)
    version=$2; shift 2
    dir=$cache/ansible-$version
    [ -f "$dir/ready" ] || { echo "control node ansible $version is not prepared: run $0 prepare $version" >&2; exit 2; }
    # Nothing of the caller's Ansible (Molecule's collections, plugins or config) leaks in.
    for var in $(env | grep -o '^ANSIBLE_[A-Z_]*'); do unset "$var"; done
    collections_path=$dir path=$dir/venv/bin:$PATH
    # Debian's own: its collections and /usr/bin, not the host's PATH (it names this
    # repository's .venv, which the container sees but cannot run).
    if is_debian "$version"; then collections_path=$debian_collections path=/usr/sbin:/usr/bin:/sbin:/bin; fi
    export ANSIBLE_CONFIG=$repo/ansible.cfg ANSIBLE_ROLES_PATH=$repo/roles ANSIBLE_COLLECTIONS_PATH=$collections_path \
      ANSIBLE_COLLECTIONS_SCAN_SYS_PATH=false ANSIBLE_FORCE_COLOR=0 ANSIBLE_NOCOLOR=1 \
      ANSIBLE_LOCAL_TEMP=$dir/tmp ANSIBLE_HOME=$dir/home
    in_node "$version" env PATH="$path" "$@"
    ;;
  *) echo "usage: $0 list [--all] | prepare [VERSION...] | describe [VERSION...] | run VERSION COMMAND [ARGS...]" >&2; exit 2 ;;
esac
