"""execution-environment.yml is a valid ansible-builder definition of an image that runs this
content: `ansible-builder create` writes the build context (no image is built: no registry is
reachable), the Python it names installs its ansible-core and ansible-runner, that install runs
the playbooks with no collection, and the image bundles exactly the collections the content
uses (none)."""
import os
import pathlib
import re
import shlex
import shutil
import subprocess
import sys

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
BIN = pathlib.Path(sys.executable).parent
EE = yaml.safe_load((ROOT / "execution-environment.yml").read_text())
# Collections that come with ansible-core, and this collection itself.
OWN = {"ansible.builtin", "ansible.legacy", "airflow_fleet.celery_config"}


@pytest.fixture(scope="module")
def context(tmp_path_factory):
    path = tmp_path_factory.mktemp("ee") / "context"
    result = subprocess.run([BIN / "ansible-builder", "create", "-f", ROOT / "execution-environment.yml",
                             "-c", path, "--output-filename", "Containerfile"],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    return path


def build_arg(containerfile, name):
    return shlex.split(re.search(rf'^ARG {name}="(.*)"$', containerfile, re.M).group(1))


def tools_pins():
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    return dict(line.split("==") for line in lines if "==" in line and not line.startswith("#"))


def collections_the_content_uses():
    """Collection names in the role's and the playbooks' tasks (module and action keys, lookups,
    filters and tests) and in the modules' imports."""
    found = set()
    name = r"([a-z0-9_]+\.[a-z0-9_]+)\.[a-z0-9_]+"
    for path in [*(ROOT / "roles").rglob("*.yml"), *(ROOT / "playbooks").rglob("*.yml")]:
        text = path.read_text()
        found |= set(re.findall(rf"^[ -]*{name}:", text, re.M))
        found |= set(re.findall(rf"""(?:lookup|query)\(\s*['"]{name}""", text))
        found |= set(re.findall(rf"(?:\||\bis|\bis not)\s*{name}\b", text))
    for path in (ROOT / "roles").rglob("*.py"):
        found |= set(re.findall(rf"ansible_collections\.{name}", path.read_text()))
    return found - OWN


def test_ansible_builder_creates_the_build_context(context):
    containerfile = (context / "Containerfile").read_text()
    assert build_arg(containerfile, "ANSIBLE_INSTALL_REFS") == [
        EE["dependencies"]["ansible_core"]["package_pip"], EE["dependencies"]["ansible_runner"]["package_pip"]]
    # The ssh connection plugin needs the ssh client, which the base image may lack.
    assert "openssh-clients [platform:rpm]" in (context / "_build/bindep.txt").read_text()


def test_ee_bundles_the_collections_the_content_uses(context):
    bundled = set()
    if "galaxy" in EE["dependencies"]:
        galaxy = yaml.safe_load((context / "_build/requirements.yml").read_text())
        bundled = {c["name"] if isinstance(c, dict) else c for c in galaxy.get("collections", [])}
    assert bundled == collections_the_content_uses()
    # galaxy.yml says the same to the collection's users.
    assert yaml.safe_load((ROOT / "galaxy.yml").read_text())["dependencies"] == {}


def test_ee_runs_the_tools_ansible_core_and_runner():
    # The tools' venv is where every scenario, and playbooks/site.yml through ansible-runner,
    # runs: the image is that tested combination, pinned, not a range pip resolves at build.
    pins = tools_pins()
    for key, package in (("ansible_core", "ansible-core"), ("ansible_runner", "ansible-runner")):
        assert EE["dependencies"][key]["package_pip"] == f"{package}=={pins[package]}"


def test_ees_python_installs_its_requirements_and_runs_the_playbooks(context, tmp_path):
    containerfile = (context / "Containerfile").read_text()
    (python,) = build_arg(containerfile, "PYCMD")
    host_python = shutil.which(pathlib.Path(python).name)
    if host_python is None:
        pytest.skip(f"no {pathlib.Path(python).name} here to stand in for the image's {python}")
    refs = build_arg(containerfile, "ANSIBLE_INSTALL_REFS")
    venv = tmp_path / "venv"
    subprocess.run([host_python, "-m", "venv", venv], check=True)
    # Wheels only: the image's pip may compile, this check should not. pip refuses an
    # ansible-core whose Requires-Python excludes the image's Python.
    result = subprocess.run([venv / "bin/python", "-m", "pip", "install", "-q", "--disable-pip-version-check",
                             "--only-binary=:all:", *refs], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    installed = subprocess.run([venv / "bin/python", "-m", "pip", "list", "--format=freeze"],
                               capture_output=True, text=True, check=True).stdout.split()
    assert set(refs) <= set(installed)
    # No collection on the path: the playbooks and the role load from ansible-core alone.
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(ANSIBLE_COLLECTIONS_PATH=str(tmp_path / "no-collections"), ANSIBLE_HOME=str(tmp_path / "home"))
    for playbook in ("playbooks/site.yml", "playbooks/audit.yml"):
        result = subprocess.run([venv / "bin/ansible-playbook", "--syntax-check", playbook],
                                cwd=ROOT, env=env, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
