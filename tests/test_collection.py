"""The repository is also the collection airflow_fleet.celery_config: it builds, the tarball
installs into a fresh path, holds the content and nothing else, and its playbooks and role
load by their fully qualified names from there (no roles_path, no repository files)."""
import json
import os
import pathlib
import subprocess
import sys
import tarfile

import pytest
import yaml
from packaging.version import Version

ROOT = pathlib.Path(__file__).resolve().parent.parent
BIN = pathlib.Path(sys.executable).parent
GALAXY = yaml.safe_load((ROOT / "galaxy.yml").read_text())
FQCN = f"{GALAXY['namespace']}.{GALAXY['name']}"


def run(args, cwd, env=None):
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("build")
    run([BIN / "ansible-galaxy", "collection", "build", "--output-path", out, ROOT], cwd=out)
    (tarball,) = out.glob("*.tar.gz")
    return tarball


@pytest.fixture(scope="module")
def installed(built, tmp_path_factory):
    path = tmp_path_factory.mktemp("collections")
    # Only the fresh path counts: a copy elsewhere (Molecule installs the project it tests
    # into ~/.ansible/collections) must not turn the install into "nothing to do".
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(path))
    run([BIN / "ansible-galaxy", "collection", "install", built, "-p", path], cwd=path, env=env)
    return path / "ansible_collections" / GALAXY["namespace"] / GALAXY["name"]


def test_name_follows_galaxy_rules():
    # Galaxy: lowercase letters, digits and underscores, starting with a letter.
    for part in (GALAXY["namespace"], GALAXY["name"]):
        assert part.replace("_", "a").isalnum() and part.islower() and part[0].isalpha(), part
    role_meta = yaml.safe_load((ROOT / "roles/airflow_celery_config/meta/main.yml").read_text())
    assert role_meta["galaxy_info"]["namespace"] == GALAXY["namespace"]


def test_requires_ansible_matches_the_role_minimum():
    runtime = yaml.safe_load((ROOT / "meta/runtime.yml").read_text())
    role_meta = yaml.safe_load((ROOT / "roles/airflow_celery_config/meta/main.yml").read_text())
    assert runtime["requires_ansible"] == f">={role_meta['galaxy_info']['min_ansible_version']}.0"


def test_version_is_the_changelogs_latest_or_next():
    # A rebuilt tarball with an old version installs as "already installed": with changes not
    # yet released (fragments), galaxy.yml names the next release; without, the latest.
    releases = yaml.safe_load((ROOT / "changelogs/changelog.yaml").read_text())["releases"]
    latest = max(releases, key=Version)
    if list((ROOT / "changelogs/fragments").glob("*.yml")):
        assert Version(GALAXY["version"]) > Version(latest)
    else:
        assert GALAXY["version"] == latest


def test_metadata_galaxy_requires():
    # Galaxy's importer refuses a collection without a repository.
    assert GALAXY["repository"].startswith("https://")
    assert GALAXY["license"] == ["Apache-2.0"]
    assert "Apache License" in (ROOT / "LICENSE").read_text() and "Version 2.0" in (ROOT / "LICENSE").read_text()


def test_tarball_holds_the_content_and_nothing_else(built):
    with tarfile.open(built) as tar:
        names = tar.getnames()
    top = {name.split("/")[0] for name in names}
    assert {"roles", "playbooks", "plugins", "meta", "README.md", "CHANGELOG.md", "LICENSE", "MANIFEST.json"} <= top
    # The releases, as antsibull-changelog keeps them, go with the content; pending fragments do not.
    assert "changelogs/changelog.yaml" in names
    assert [name for name in names if name.startswith("changelogs/fragments")] == []
    # Test, lint and build tooling (Molecule, flake8, the test requirements) stays out. The
    # ansible-lint config goes in: Galaxy's importer lints the tarball with it (it names the
    # ansible-core 2.14 that requires_ansible takes).
    assert top <= {"roles", "playbooks", "plugins", "meta", "docs", "changelogs", "README.md", "CHANGELOG.md",
                   "LICENSE", "MANIFEST.json", "FILES.json", ".ansible-lint"}, top
    assert ".ansible-lint" in top
    test_only = {".config", "molecule", "tests", "benchmarks", "images", "scripts", "__pycache__", ".pytest_cache",
                 ".venv", ".cache", ".ansible", ".ci", ".flake8", ".yamllint", "requirements.txt",
                 "requirements.yml", "requirements-galaxy-importer.txt"}
    assert [name for name in names if set(name.split("/")) & test_only] == []


def test_manifest_carries_the_metadata(built):
    with tarfile.open(built) as tar:
        manifest = json.load(tar.extractfile("MANIFEST.json"))["collection_info"]
    assert (manifest["version"], manifest["repository"], manifest["license"]) == (
        GALAXY["version"], GALAXY["repository"], GALAXY["license"])


def test_install_has_the_role_its_modules_and_the_playbooks(installed):
    manifest = json.loads((installed / "MANIFEST.json").read_text())["collection_info"]
    assert (manifest["namespace"], manifest["name"]) == (GALAXY["namespace"], GALAXY["name"])
    assert (installed / "roles/airflow_celery_config/tasks/main.yml").is_file()
    # A role inside a collection gets no plugins from its own library/: the collection's
    # plugins/modules (a link to it) serves them.
    for module in (ROOT / "roles/airflow_celery_config/library").glob("*.py"):
        assert (installed / "plugins/modules" / module.name).is_file(), module.name
    for playbook in ("site", "audit", "summary"):
        assert (installed / f"playbooks/{playbook}.yml").is_file()


@pytest.mark.parametrize("playbook", [f"{FQCN}.site", f"{FQCN}.audit", "fqcn_role.yml"])
def test_playbooks_and_role_load_by_fqcn_from_the_install(installed, tmp_path, playbook):
    # An empty folder: no ansible.cfg, no roles/ beside it; only the installed collection.
    (tmp_path / "hosts.yml").write_text("airflow_workers:\n  hosts:\n    worker-1:\n")
    (tmp_path / "fqcn_role.yml").write_text(yaml.safe_dump([{
        "name": "Use the role by its FQCN", "hosts": "airflow_workers",
        "roles": [f"{FQCN}.airflow_celery_config"]}]))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(ANSIBLE_COLLECTIONS_PATH=str(installed.parents[2]), ANSIBLE_CONFIG=str(tmp_path / "none.cfg"))
    result = run([BIN / "ansible-playbook", "-i", "hosts.yml", playbook, "--syntax-check"], cwd=tmp_path, env=env)
    assert "playbook:" in result.stdout
