"""The changelog is kept as antsibull-changelog keeps a collection's: the fragments in
changelogs/fragments/ pass its lint, and CHANGELOG.md is what `antsibull-changelog generate`
renders from changelogs/changelog.yaml, so no one edits it by hand."""
import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
ANTSIBULL = pathlib.Path(sys.executable).parent / "antsibull-changelog"


def antsibull(*args, cwd):
    if not ANTSIBULL.exists():
        pytest.skip(f"{ANTSIBULL} is missing: requirements.txt has it, `make venv` installs it")
    result = subprocess.run([ANTSIBULL, *args], cwd=cwd, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_fragments_and_changelog_yaml_pass_the_lint():
    assert antsibull("lint", cwd=ROOT).stdout == ""
    assert antsibull("lint-changelog-yaml", "changelogs/changelog.yaml", cwd=ROOT).stdout == ""


def test_changelog_md_is_the_rendering(tmp_path):
    # A copy, so that the check writes nothing into the repository.
    shutil.copy(ROOT / "galaxy.yml", tmp_path)
    shutil.copytree(ROOT / "changelogs", tmp_path / "changelogs")
    antsibull("generate", cwd=tmp_path)
    assert (ROOT / "CHANGELOG.md").read_text() == (tmp_path / "CHANGELOG.md").read_text(), (
        "CHANGELOG.md is rendered from changelogs/: run `antsibull-changelog generate`")
