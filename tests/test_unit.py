"""The worker unit as systemd shows it: environment files, ExecStart and the team the worker
serves, read without a host."""
import os
import pathlib
import pwd
import sys
import time

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "roles/airflow_celery_config/module_utils"))

from airflow_celery_config_unit import (  # noqa: E402
    UnitError, env_file_entry, exec_argv, parse_env_file, parse_show, run_python, started_after_change, unit_environment,
    worker_team)

EXEC = ("{ path=/opt/airflow/venv/bin/airflow ; argv[]=/opt/airflow/venv/bin/airflow celery worker %s ; "
        "ignore_errors=no ; start_time=[Thu 2026-11-26 16:38:20 UTC] ; stop_time=[n/a] ; pid=604 ; code=(null) ; status=0/0 }")


def test_an_environment_file_is_read_as_systemd_reads_it():
    text = "# comment\n; also a comment\n\nA=1\n B = two \nC=\"quoted value\"\nD='single'\nnot an assignment\nE=\n"
    assert parse_env_file(text) == {"A": "1", "B": "two", "C": "quoted value", "D": "single", "E": ""}


def test_an_optional_environment_file_is_told_from_a_required_one():
    assert env_file_entry("/etc/default/airflow (ignore_errors=yes)") == ("/etc/default/airflow", True)
    assert env_file_entry("/etc/default/airflow (ignore_errors=no)") == ("/etc/default/airflow", False)


def test_exec_start_keeps_the_command_not_the_process():
    assert exec_argv(EXEC % "--queues default") == ["/opt/airflow/venv/bin/airflow", "celery", "worker", "--queues", "default"]
    assert exec_argv("garbage") == []


@pytest.mark.parametrize("args, team", [
    ("--team blue", "blue"), ("--team=blue", "blue"), ("-t blue", "blue"), ("-tblue", "blue"),
    ("--queues default", None), ("--queues default --concurrency 2", None),
])
def test_the_team_comes_from_the_worker_command(args, team):
    assert worker_team([EXEC % args]) == team


def test_a_team_flag_of_another_command_is_not_the_workers():
    entry = EXEC.replace("celery worker %s", "dag-processor --team blue")
    assert worker_team([entry]) is None


def test_show_output_keeps_repeated_properties_as_lists():
    props = parse_show("User=airflow\nExecStart=%s\nEnvironmentFiles=/a (ignore_errors=no)\nEnvironmentFiles=/b (ignore_errors=yes)\n"
                       % (EXEC % ""))
    assert props["User"] == "airflow"
    assert len(props["ExecStart"]) == 1
    assert props["EnvironmentFiles"] == ["/a (ignore_errors=no)", "/b (ignore_errors=yes)"]


def test_an_environment_file_beats_environment_and_says_where_a_value_came_from():
    files = {"/etc/default/airflow": "AIRFLOW_HOME=/srv/airflow\nX=file\n"}
    props = {"Environment": "AIRFLOW_HOME=/home/airflow/airflow \"Y=with space\"",
             "EnvironmentFiles": ["/etc/default/airflow (ignore_errors=no)", "/missing (ignore_errors=yes)"]}
    env, origin, where = unit_environment(props, "airflow-worker", read=lambda path: _read(files, path))
    assert env == {"AIRFLOW_HOME": "/srv/airflow", "X": "file", "Y": "with space"}
    assert origin["AIRFLOW_HOME"] == "EnvironmentFile=/etc/default/airflow of airflow-worker"
    assert origin["Y"] == "Environment= of airflow-worker"
    assert where == {"AIRFLOW_HOME": "/etc/default/airflow", "X": "/etc/default/airflow"}


def test_a_required_environment_file_that_cannot_be_read_is_an_error():
    props = {"Environment": "", "EnvironmentFiles": ["/missing (ignore_errors=no)"]}
    with pytest.raises(UnitError, match="cannot read EnvironmentFile /missing"):
        unit_environment(props, "airflow-worker", read=lambda path: _read({}, path))


def _read(files, path):
    if path not in files:
        raise OSError(2, "No such file or directory")
    return files[path]


# A child that says it started, reads the request, prints a line halfway (after some noise),
# then reads the line `meanwhile` returns.
CHILD = """
import json, pathlib, sys
pathlib.Path("started").touch()  # in its working directory
req = json.loads(sys.stdin.readline())
sys.stdout.write("noise\\n" + json.dumps({"halfway": req["mode"]}) + "\\n")
sys.stdout.flush()
sys.stdout.write("noise\\n" + json.dumps({"req": req, "line": sys.stdin.readline()}) + "\\n")
"""


def run_child(tmp_path, meanwhile, source=CHILD, timeout=30):
    user = pwd.getpwuid(os.getuid())
    return run_python(sys.executable, source, {"mode": "ping"}, user, dict(os.environ), str(tmp_path), timeout,
                      meanwhile)


def test_the_child_runs_while_meanwhile_does_and_reads_its_line(tmp_path):
    def meanwhile(_halfway):
        # The child started before `meanwhile` ends: it is what restarts the worker meanwhile.
        for _ in range(300):
            if (tmp_path / "started").exists():
                return "go 12.5"
            time.sleep(0.1)
        return "child never started"
    assert run_child(tmp_path, meanwhile) == ({"req": {"mode": "ping"}, "line": "go 12.5\n"}, None)


def test_meanwhile_can_wait_for_the_childs_line_halfway(tmp_path):
    # What a drain found decides whether the module restarts the worker.
    assert run_child(tmp_path, lambda halfway: "go %s" % halfway()["halfway"]) == (
        {"req": {"mode": "ping"}, "line": "go ping\n"}, None)


def test_halfway_is_none_where_the_child_ends_first(tmp_path):
    seen = []
    answer, problem = run_child(tmp_path, lambda halfway: seen.append(halfway()) or "stop",
                                source="import sys; sys.exit('broken')")
    assert seen == [None]
    assert answer is None and problem == "It exited 1 and printed:\nbroken"


def test_a_child_that_runs_too_long_is_killed(tmp_path):
    answer, problem = run_child(tmp_path, lambda halfway: "stop" if halfway() is None else "go 1", source="import time; time.sleep(30)",
                                timeout=1)
    assert answer is None and problem.endswith("it ran longer than 1 seconds")


def test_without_meanwhile_the_child_reads_the_request_alone(tmp_path):
    assert run_child(tmp_path, None) == ({"req": {"mode": "ping"}, "line": ""}, None)


def test_a_child_that_prints_no_answer_is_a_problem(tmp_path):
    user = pwd.getpwuid(os.getuid())
    answer, problem = run_python(sys.executable, "import sys; sys.exit('broken')", {}, user, dict(os.environ),
                                 str(tmp_path), 30, lambda _halfway: "go 1")
    assert answer is None
    assert problem == "It exited 1 and printed:\nbroken"


def config_files(tmp_path, mtime):
    """A module in its folder and an airflow.cfg, all last changed at `mtime`."""
    folder = tmp_path / "config"
    folder.mkdir()
    files = [folder / "my_celery_config.py", tmp_path / "airflow.cfg"]
    for path in files:
        path.write_text("x")
    for path in files + [folder, tmp_path]:
        os.utime(path, (mtime, mtime))
    return [str(path) for path in files] + [None]


def test_a_worker_started_after_its_files_changed_runs_them(tmp_path):
    paths = config_files(tmp_path, 1000)
    assert started_after_change(1001, paths)
    assert not started_after_change(999, paths)
    assert not started_after_change(None, paths)


def test_a_file_changed_since_the_start_makes_the_worker_stale(tmp_path):
    paths = config_files(tmp_path, 1000)
    os.utime(paths[1], (1002, 1002))
    assert not started_after_change(1001, paths)


def test_a_file_removed_since_the_start_makes_the_worker_stale(tmp_path):
    # The rollback removes a module this run created: only its folder shows when.
    paths = config_files(tmp_path, 1000)
    os.remove(paths[0])
    os.utime(os.path.dirname(paths[0]), (1002, 1002))
    assert not started_after_change(1001, paths)
