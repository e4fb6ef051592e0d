#!/usr/bin/env bash
# The checks the collection meets where Ansible users get it (docs/testing.md: Collection checks):
# galaxy-importer, which Galaxy runs on every upload, and `ansible-test sanity`, on the tarball
# `ansible-galaxy collection build` makes. Exits non-zero when either finds anything, a warning
# included: Galaxy imports a collection with warnings, but shows them on its page.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export PATH="$root/.venv/bin:$PATH"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

ansible-galaxy collection build --output-path "$work" . >/dev/null
tarball=$(echo "$work"/*.tar.gz)
echo "== $(date +%T) built $(basename "$tarball")"

# galaxy-importer in a venv of its own: it pins flake8 and attrs older than requirements.txt's.
importer=.cache/galaxy-importer
if [ ! -x "$importer/bin/python" ] || ! cmp -s requirements-galaxy-importer.txt "$importer/requirements.txt"; then
  echo "installing galaxy-importer into $importer"
  rm -rf "$importer"
  python3 -m venv "$importer"
  "$importer/bin/pip" install -q -r requirements-galaxy-importer.txt
  cp requirements-galaxy-importer.txt "$importer/requirements.txt"
fi

echo "== $(date +%T) galaxy-importer"
# Its own bin first: it runs ansible-doc and ansible-lint from PATH. It writes
# importer_result.json into the working directory.
status=0
(cd "$work" && PATH="$root/$importer/bin:$PATH" python -m galaxy_importer.main "$tarball") > "$work/importer.log" 2>&1 || status=$?
cat "$work/importer.log"
if [ "$status" -ne 0 ] || grep -qE '^(WARNING|ERROR|CRITICAL):' "$work/importer.log" \
   || ! grep -q '^Importer processing completed successfully' "$work/importer.log"; then
  echo "galaxy-importer: the collection has problems (above)" >&2
  importer_failed=1
else
  importer_failed=0
fi

# ansible-test needs the collection at ansible_collections/NAMESPACE/NAME, and skips a plugin
# folder that is a link, as plugins/modules and plugins/module_utils are (to the role's library/
# and module_utils/, docs/design.md: Install). The copy resolves them the other way round:
# plugins/ holds the files, and the role's folders, the same files, link to it, so that each file
# is tested once, where ansible-test judges modules and module_utils.
echo "== $(date +%T) ansible-test sanity"
mkdir "$work/unpacked"
tar -xzf "$tarball" -C "$work/unpacked"
# NAMESPACE-NAME-VERSION.tar.gz; Galaxy's names have no "-".
IFS=- read -r namespace name _ <<< "$(basename "$tarball")"
collection=$work/ansible_collections/$namespace/$name
mkdir -p "$(dirname "$collection")"
cp -rL "$work/unpacked" "$collection"
for pair in modules:library module_utils:module_utils; do
  plugin=$collection/plugins/${pair%%:*}
  role=$collection/roles/airflow_celery_config/${pair##*:}
  diff -r "$plugin" "$role" >/dev/null || { echo "$plugin and $role differ: not the links they should be" >&2; exit 1; }
  rm -r "$role"
  ln -s "../../plugins/${pair%%:*}" "$role"
done
# The ignore entries (each with its reason in the file) stay in the repository, out of the tarball.
mkdir -p "$collection/tests/sanity"
cp tests/sanity/ignore-*.txt "$collection/tests/sanity/"

# --local: the tools' venv runs ansible-test itself; each sanity test gets a venv of its own,
# which ansible-test keeps under ~/.ansible/test/venv for the next run.
python scripts/ansible_test_get_pip.py --install
python_version=$(python --version 2>&1)  # Python X.Y.Z
python_version=${python_version#Python }
python_version=${python_version%.*}
status=0
(cd "$collection" && ansible-test sanity --local --python "$python_version" --color no) || status=$?
[ "$status" -eq 0 ] || echo "ansible-test sanity: the collection has problems (above)" >&2

if [ "$importer_failed" -ne 0 ] || [ "$status" -ne 0 ]; then
  exit 1
fi
echo "== $(date +%T) galaxy-importer and ansible-test sanity found nothing"
