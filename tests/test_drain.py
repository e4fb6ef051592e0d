"""The drain's note, the report of the tasks it waits for, and the module that gives back the
queues an interrupted drain left cancelled."""
import json
import pathlib
import sys
import time

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "roles/airflow_celery_config/module_utils"))

from airflow_celery_config_drain import (  # noqa: E402
    DrainThenRestart, busy_summary, busy_tasks, busy_text, merged, note_path, read_note, write_note)

QUEUE = {"name": "default", "exchange": "default", "exchange_type": "direct", "routing_key": "default"}


def test_note_keeps_the_queues_and_the_start(tmp_path):
    path = note_path(str(tmp_path / "state"), "airflow-worker@a b.service")
    assert path.endswith("/airflow-worker@a_b.service.drain.json")
    assert read_note(path) is None
    write_note(path, [QUEUE], 1700000000.5)
    assert read_note(path) == {"queues": [QUEUE], "started": 1700000000.5}


def test_a_note_cut_short_still_counts_as_a_drain(tmp_path):
    path = tmp_path / "w.drain.json"
    path.write_text('{"queues": [{"na')
    note = read_note(str(path))
    assert note["queues"] == [] and note["started"] > 0


def test_task_age_reads_wall_clock_and_monotonic_starts():
    tasks = busy_tasks([{"name": "a", "id": "1", "time_start": 1700000000.0},
                        {"name": "b", "id": "2", "time_start": 5000.0}],
                       [{"name": "c", "id": "3"}], wall_now=1700000030.0, monotonic_now=5100.0)
    assert tasks == [{"name": "b", "id": "2", "seconds": 100}, {"name": "a", "id": "1", "seconds": 30},
                     {"name": "c", "id": "3", "seconds": None}]
    assert busy_summary(tasks) == "3 task(s), the longest running 100 s"


def test_reserved_only_and_idle():
    tasks = busy_tasks([], [{"name": "c", "id": "3"}], 0, 0)
    assert busy_summary(tasks) == "1 task(s)"
    assert busy_text(tasks) == "c[3] reserved, not started"
    assert busy_summary([]) == "" and busy_text([]) == ""


def test_busy_text_names_five_then_counts():
    tasks = busy_tasks([{"name": "t", "id": str(n), "time_start": 10.0 + n} for n in range(7)], [], 0, 20.0)
    text = busy_text(tasks)
    assert text.startswith("t[0] running 10 s; t[1] running 9 s")
    assert text.endswith("; and 2 more")


def test_merged_keeps_the_noted_queues_first_and_adds_new_names_only():
    noted = [{"name": "default", "exchange": "default"}]
    more = [{"name": "default", "exchange": "other"}, {"name": "gpu"}]
    assert merged(noted, more) == [{"name": "default", "exchange": "default"}, {"name": "gpu"}]
    assert merged([], more) == more


def drain_then_restart(tmp_path, found, timeout=600, busy_worker="defer", started=None):
    """A round of the drain before a restart whose child found `found` halfway: what it told the
    child, whether it restarted, and its report once the child said `resumed`."""
    restarts = []
    p = dict(queues=[QUEUE], timeout=timeout, round=None, busy_worker=busy_worker, note_dir=str(tmp_path))
    if started is not None:
        write_note(note_path(str(tmp_path), "w"), [QUEUE], started)
    drain = DrainThenRestart(p, "w", lambda: restarts.append(1) or "go 120.0")
    told = drain.decide(lambda: found if found is None else {"drain": found})
    return told, restarts, drain.report({"resumed": True} if told == "resume" else {})


RUNNING = {"active": [{"name": "acc.hold", "id": "1", "time_start": time.time() - 50}], "reserved": [],
           "wall": time.time(), "monotonic": time.monotonic()}


def test_an_idle_worker_is_restarted_at_once(tmp_path):
    told, restarts, report = drain_then_restart(
        tmp_path, dict(RUNNING, active=[], cancelled_at=time.time()))
    assert (told, restarts) == ("go 120.0", [1])
    assert report["idle"] and not report["waiting"] and report["drainable"]
    # The note stays until the restarted worker answers (the module removes it then).
    assert read_note(report["note"])["queues"] == [QUEUE]


def test_a_busy_worker_waits_another_round_and_the_note_keeps_when_the_drain_began(tmp_path):
    cancelled = time.time() - 1
    told, restarts, report = drain_then_restart(tmp_path, dict(RUNNING, cancelled_at=cancelled))
    assert (told, restarts) == ("stop", [])
    assert report["waiting"] and report["busy_summary"] == "1 task(s), the longest running 50 s"
    assert read_note(report["note"])["started"] == cancelled


@pytest.mark.parametrize("busy_worker, told, restarted", [("defer", "resume", []), ("restart", "go 120.0", [1])])
def test_a_worker_busy_past_the_drain_is_deferred_or_restarted_as_told(tmp_path, busy_worker, told, restarted):
    result = drain_then_restart(tmp_path, RUNNING, timeout=60, busy_worker=busy_worker, started=time.time() - 61)
    assert result[:2] == (told, restarted)
    report = result[2]
    assert report["expired"] and not report["waiting"]
    # A deferred worker that took its queues back keeps no note.
    assert report.get("deferred", False) == (busy_worker == "defer")
    assert (read_note(report["note"]) is None) == (busy_worker == "defer")


def test_a_worker_that_cannot_be_drained_is_restarted_without_a_drain(tmp_path):
    told, restarts, report = drain_then_restart(tmp_path, {"problem": "RuntimeError: no answer"})
    assert (told, restarts) == ("go 120.0", [1])
    assert report["drainable"] is False and report["problem"] == "RuntimeError: no answer"


def test_a_child_that_ended_before_it_drained_is_not_restarted(tmp_path):
    told, restarts, report = drain_then_restart(tmp_path, None)
    assert (told, restarts) == ("stop", [])
    assert not report["waiting"]


def give_back(monkeypatch, tmp_path, capsys, note=None, active=True, answer=None):
    """The drain module's main() on a fake worker: its result, what the worker was asked, and
    whether the note is still there."""
    from ansible.module_utils.testing import patch_module_args
    from test_modules import INSTALL, ROLE, load
    module = load(ROLE / "library/airflow_celery_config_drain.py")
    asked = []

    class Worker(object):
        def __init__(self, ansible_module, install):
            self.active = active

        def ask(self, mode, **extra):
            asked.append((mode, extra))
            return answer or {}

    monkeypatch.setattr(module, "Worker", Worker)
    path = note_path(str(tmp_path), "airflow-worker")
    if note is not None:
        write_note(path, note, 1700000000.0)
    with patch_module_args({"install": INSTALL, "note_dir": str(tmp_path)}), pytest.raises(SystemExit):
        module.main()
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    return result, asked, read_note(path) is not None


def test_the_drain_module_gives_back_the_queues_its_note_names_and_removes_the_note(monkeypatch, tmp_path, capsys):
    result, asked, note_left = give_back(monkeypatch, tmp_path, capsys, note=[QUEUE])
    assert asked == [("resume", {"queues": [QUEUE]})] and not note_left
    assert (result["answered"], result["changed"], result["queues"], result["imports"]) == (True, True, ["default"], 1)


def test_the_drain_module_does_nothing_without_a_note(monkeypatch, tmp_path, capsys):
    result, asked, note_left = give_back(monkeypatch, tmp_path, capsys)
    assert asked == [] and not note_left
    assert (result["answered"], result["changed"], result["queues"], result["imports"]) == (True, False, [], 0)


def test_a_worker_that_does_not_take_its_queues_back_keeps_the_note_for_the_next_run(monkeypatch, tmp_path, capsys):
    result, asked, note_left = give_back(monkeypatch, tmp_path, capsys, note=[QUEUE], answer={"problem": "RuntimeError: no answer"})
    assert note_left and not result["changed"]
    assert (result["answered"], result["problem"]) == (False, "RuntimeError: no answer")


def test_a_stopped_worker_loses_its_note_as_it_starts_with_all_its_queues(monkeypatch, tmp_path, capsys):
    result, asked, note_left = give_back(monkeypatch, tmp_path, capsys, note=[QUEUE], active=False)
    assert asked == [] and not note_left
    assert (result["answered"], result["changed"], result["queues"]) == (False, True, [])
