"""execution-environment.yml is a valid ansible-builder definition: `ansible-builder create`
writes the build context (no image is built: no registry is reachable) with the collections
of requirements.yml and an ansible-core in the tested range."""
import pathlib
import subprocess
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
BIN = pathlib.Path(sys.executable).parent


def test_ansible_builder_creates_the_build_context(tmp_path):
    result = subprocess.run([BIN / "ansible-builder", "create", "-f", ROOT / "execution-environment.yml",
                             "-c", tmp_path / "context", "--output-filename", "Containerfile"],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    containerfile = (tmp_path / "context/Containerfile").read_text()
    assert "ansible-galaxy collection install" in containerfile
    assert "ansible-core>=2.14,<2.22" in containerfile
    requirements = yaml.safe_load((tmp_path / "context/_build/requirements.yml").read_text())
    assert requirements == yaml.safe_load((ROOT / "requirements.yml").read_text())


def test_ee_core_range_is_the_tested_range():
    ee = yaml.safe_load((ROOT / "execution-environment.yml").read_text())
    runtime = yaml.safe_load((ROOT / "meta/runtime.yml").read_text())
    low = runtime["requires_ansible"].removeprefix(">=").rsplit(".", 1)[0]
    assert ee["dependencies"]["ansible_core"]["package_pip"].startswith(f"ansible-core>={low},")
