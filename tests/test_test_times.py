"""The tools `make test` times itself with, and the image check of Molecule's dependency step."""
import os
import subprocess
import sys

import pytest

SCRIPTS = os.path.join(os.path.dirname(__file__), "..", "scripts")
sys.path.insert(0, SCRIPTS)

import check_images  # noqa: E402
import times_table  # noqa: E402

MOLECULE_OUTPUT = """\
INFO     [default > destroy] Executing
Playbook run took 0 days, 0 hours, 0 minutes, 5 seconds
INFO     [default > destroy] Executed: Successful
INFO     [default > converge] Executing
TASK [something]
"""


def test_timelog_prefixes_lines_and_records_each_step(tmp_path):
    times = tmp_path / "times.tsv"
    result = subprocess.run([sys.executable, os.path.join(SCRIPTS, "timelog.py"), "default 3.3.2+3.0.6"],
                            input=MOLECULE_OUTPUT, capture_output=True, text=True, check=True,
                            env=dict(os.environ, ACC_TIMES=str(times)))
    assert result.stdout.splitlines()[0] == "[default 3.3.2+3.0.6] INFO     [default > destroy] Executing"
    rows = [line.split("\t") for line in times.read_text().splitlines()]
    # destroy ended; converge did not (the stream ended inside it, as when a step fails).
    assert [row[:2] for row in rows] == [["default 3.3.2+3.0.6", "destroy"],
                                         ["default 3.3.2+3.0.6", "converge (failed)"],
                                         ["default 3.3.2+3.0.6", "all"]]


def test_timelog_without_a_times_file_only_prefixes(tmp_path):
    env = {key: value for key, value in os.environ.items() if key != "ACC_TIMES"}
    result = subprocess.run([sys.executable, os.path.join(SCRIPTS, "timelog.py"), "x"], input="a\n",
                            capture_output=True, text=True, check=True, env=env, cwd=tmp_path)
    assert result.stdout == "[x] a\n"
    assert os.listdir(tmp_path) == []


def test_table_sums_a_step_that_ran_twice_and_orders_steps_as_molecule_runs_them(tmp_path):
    times = tmp_path / "times.tsv"
    times.write_text("image acc-base:bookworm\tbuild\t65\n"
                     "default\tverify\t200\ndefault\tdestroy\t5\ndefault\tconverge\t61\ndefault\tdestroy\t7\n"
                     "default\tall\t273\n")
    lines = times_table.table(times_table.read(str(times))).splitlines()
    assert lines[0].split() == ["run", "destroy", "converge", "verify", "build", "all"]
    assert lines[1].split() == ["image", "acc-base:bookworm", "-", "-", "-", "1:05", "-"]
    assert lines[2].split() == ["default", "0:12", "1:01", "3:20", "-", "4:33"]


@pytest.mark.parametrize("text, environ, expected", [
    ("acc-worker:airflow-${ACC_AIRFLOW_VERSION:-3.3.2}", {}, "acc-worker:airflow-3.3.2"),
    ("acc-worker:airflow-${ACC_AIRFLOW_VERSION:-3.3.2}", {"ACC_AIRFLOW_VERSION": "1.10.15"}, "acc-worker:airflow-1.10.15"),
    # Molecule, like the shell, takes the default for a variable that is set but empty.
    ("acc-worker:airflow-${ACC_AIRFLOW_VERSION:-3.3.2}", {"ACC_AIRFLOW_VERSION": ""}, "acc-worker:airflow-3.3.2"),
    ("acc-services:bookworm", {}, "acc-services:bookworm"),
])
def test_image_names_are_filled_in_as_molecule_does(text, environ, expected):
    assert check_images.expand(text, environ) == expected


def test_a_missing_image_names_the_command_that_builds_it(tmp_path, monkeypatch, capsys):
    (tmp_path / "molecule.yml").write_text(
        "platforms:\n"
        "  - {name: a, image: acc-services:bookworm}\n"
        "  - {name: b, image: 'acc-worker:airflow-${ACC_AIRFLOW_VERSION:-3.3.2}'}\n")
    monkeypatch.setattr(check_images, "missing_images", lambda images: [i for i in images if "airflow" in i])
    assert check_images.main(str(tmp_path), {"ACC_AIRFLOW_VERSION": "2.6.3"}) == 1
    assert capsys.readouterr().err == (
        "image acc-worker:airflow-2.6.3 is missing; build it from the repository's root with:"
        " ACC_AIRFLOW_VERSIONS=2.6.3 scripts/build-images.sh (`make images` builds every image)\n")


def test_present_images_pass(tmp_path, monkeypatch):
    (tmp_path / "molecule.yml").write_text("platforms:\n  - {name: a, image: acc-services:bookworm}\n")
    monkeypatch.setattr(check_images, "missing_images", lambda images: [])
    assert check_images.main(str(tmp_path), {}) == 0
