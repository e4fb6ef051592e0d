"""The drain's note and the report of the tasks it waits for."""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "roles/airflow_celery_config/module_utils"))

from airflow_celery_config_drain import busy_summary, busy_tasks, busy_text, merged, note_path, read_note, write_note  # noqa: E402

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
