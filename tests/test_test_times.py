"""The tools `make test` times itself with, the image check of Molecule's dependency step, and
the queue its lanes take scenarios from."""
import os
import subprocess
import sys

import pytest

SCRIPTS = os.path.join(os.path.dirname(__file__), "..", "scripts")
sys.path.insert(0, SCRIPTS)

import check_images  # noqa: E402
import scenario_queue  # noqa: E402
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


def test_a_lane_builds_the_airflow_versions_of_its_scenario_s_workers(tmp_path):
    (tmp_path / "molecule.yml").write_text(
        "platforms:\n"
        "  - {name: a, image: acc-services:bookworm}\n"
        "  - {name: b, image: 'acc-worker:airflow-${ACC_AIRFLOW_VERSION:-3.3.2}'}\n"
        "  - {name: c, image: acc-worker:airflow-1.10.15}\n")
    images = check_images.scenario_images(str(tmp_path), {"ACC_AIRFLOW_VERSION": "2.6.3"})
    assert check_images.airflow_versions(images) == ["1.10.15", "2.6.3"]


def test_lanes_take_each_scenario_once_in_order_until_the_queue_is_empty_or_cleared(tmp_path, capsys):
    queue = str(tmp_path / "queue")
    assert scenario_queue.main(["take"], queue) == 1
    assert scenario_queue.main(["fill", "restarts", "native", "hosts"], queue) == 0
    taken = []
    for _ in range(2):
        assert scenario_queue.main(["take"], queue) == 0
        taken.append(capsys.readouterr().out.strip())
    assert taken == ["restarts", "native"]
    assert scenario_queue.main(["clear"], queue) == 0
    assert scenario_queue.main(["take"], queue) == 1
    assert capsys.readouterr().out == ""


def test_two_lanes_never_take_the_same_scenario(tmp_path):
    queue = str(tmp_path / "queue")
    names = ["s%d" % number for number in range(150)]
    scenario_queue.main(["fill"] + names, queue)
    take = [sys.executable, os.path.join(SCRIPTS, "scenario_queue.py"), "take"]
    env = dict(os.environ, ACC_SCENARIO_QUEUE=queue)
    lanes = [subprocess.Popen(["sh", "-c", 'while "$@"; do :; done', "sh"] + take, stdout=subprocess.PIPE, text=True, env=env)
             for _ in range(3)]
    taken = [line for lane in lanes for line in lane.communicate()[0].split()]
    assert sorted(taken) == sorted(names)
