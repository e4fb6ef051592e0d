"""When the record of a worker's last full check still holds, and what a run reports from it;
and the script that lists what the worker's interpreter imports from."""
import copy
import json
import os
import pathlib
import stat
import subprocess
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "roles/airflow_celery_config/module_utils"))

import airflow_celery_config_installed  # noqa: E402
from airflow_celery_config_record import RECORD_VERSION, differences, fingerprint, holds, recorded_report, root_only  # noqa: E402

FILES = {"/home/airflow/airflow/airflow.cfg": "c1", "/home/airflow/airflow/config/my_celery_config.py": "m1"}
UNIT = {"User": "airflow", "Environment": "AIRFLOW_HOME=/home/airflow/airflow"}
PYTHON = {"executable": "/usr/bin/python3.11", "distributions": ["apache_airflow_providers_celery-3.26.0.dist-info"]}
PROCESS = {"boot_id": "b", "pid": "604", "start_usec": "55238544442"}
# The report of a full check that wrote the module and airflow.cfg and restarted the worker: it
# imported Airflow three times (the facts module, the read after the writes, the restarted
# worker's ping; tasks/report.yml counts them), where a run that finds the record holding imports none.
REPORT = {"state": "in sync", "module": "updated", "cfg": "updated", "restarted": True, "airflow_imports": 3,
          "changed_files": ["/home/airflow/airflow/airflow.cfg"], "restart_reason": None, "read_from": "app",
          "check": "full"}


def record(**changes):
    out = {"version": RECORD_VERSION, "recorded_at": "2026-11-26T16:38:31Z", "report": copy.deepcopy(REPORT),
           "fingerprint": fingerprint("inputs", FILES, UNIT, PYTHON), "process": PROCESS}
    out.update(changes)
    return out


def test_the_same_inputs_and_the_same_worker_process_hold():
    assert holds(record(), fingerprint("inputs", FILES, UNIT, PYTHON), PROCESS, True, 100.0, 200.0) == (True, None)


def test_each_kind_of_change_is_named():
    now = fingerprint("other inputs", dict(FILES, **{"/home/airflow/airflow/airflow.cfg": "c2"}),
                      dict(UNIT, Environment="X=1"), dict(PYTHON, distributions=["apache_airflow_providers_celery-3.27.0.dist-info"]))
    assert differences(record()["fingerprint"], now) == [
        "/home/airflow/airflow/airflow.cfg", "the role's inputs", "the unit", "the worker's Python and its installed packages"]
    ok, why = holds(record(), now, PROCESS, True, 300.0, 200.0)
    assert not ok and why.startswith("changed since the full check of 2026-11-26T16:38:31Z: /home/airflow/airflow/airflow.cfg, ")


def test_a_file_that_appears_or_goes_counts_as_a_change():
    now = fingerprint("inputs", dict(FILES, **{"/etc/default/airflow": "e"}), UNIT, PYTHON)
    assert differences(record()["fingerprint"], now) == ["/etc/default/airflow"]


def test_no_record_or_another_versions_record_does_not_hold():
    now = fingerprint("inputs", FILES, UNIT, PYTHON)
    assert holds(None, now, PROCESS, True, 300.0, 200.0) == (False, "no record of a full check")
    assert not holds(record(version=RECORD_VERSION + 1), now, PROCESS, True, 300.0, 200.0)[0]


def test_a_stopped_worker_is_checked_in_full():
    now = fingerprint("inputs", FILES, UNIT, PYTHON)
    assert holds(record(), now, PROCESS, False, 300.0, 200.0) == (False, "the worker unit is not active")


def test_another_process_holds_only_if_it_started_after_the_files_last_changed():
    now = fingerprint("inputs", FILES, UNIT, PYTHON)
    other = dict(PROCESS, pid="700", start_usec="99")
    assert holds(record(), now, other, True, 300.0, 200.0) == (True, None)
    assert holds(record(), now, other, True, 100.0, 200.0) == (False, "the worker restarted before its files last changed")
    # The same pid after a reboot is another process.
    assert not holds(record(), now, dict(PROCESS, boot_id="c"), True, 100.0, 200.0)[0]


def test_the_recorded_report_is_that_of_a_run_that_wrote_and_imported_nothing():
    kept = record()
    report = recorded_report(kept, "2026-11-26T16:38:31Z")
    assert report["state"] == "in sync"
    assert (report["module"], report["cfg"], report["changed_files"], report["restarted"]) == ("matches", "matches", [], False)
    assert (report["airflow_imports"], report["check"], report["checked_at"]) == (0, "recorded", "2026-11-26T16:38:31Z")
    assert report["read_from"] == "record"
    # The record read is left as it was: it still says what the full check did.
    assert kept == record()


def test_the_installed_script_lists_versions_found_on_the_path(tmp_path):
    (tmp_path / "celery-5.6.3.dist-info").mkdir()
    (tmp_path / "legacy-1.0.egg-info").mkdir()
    (tmp_path / "celery").mkdir()
    entries, names = airflow_celery_config_installed.installed(["", str(tmp_path), str(tmp_path / "missing")])
    assert entries == [str(tmp_path)]
    assert names == [str(tmp_path / "celery-5.6.3.dist-info"), str(tmp_path / "legacy-1.0.egg-info")]


def test_the_installed_script_runs_on_its_own_as_the_module_sends_it():
    source = pathlib.Path(airflow_celery_config_installed.__file__).read_text()
    out = subprocess.run([sys.executable, "-c", source], stdout=subprocess.PIPE, check=True, universal_newlines=True).stdout
    answer = json.loads(out.strip().splitlines()[-1])
    assert answer["executable"] and answer["path"] and "" not in answer["path"]
    assert any(name.split("/")[-1].startswith("pytest-") for name in answer["distributions"])


def test_only_a_record_only_root_could_have_written_counts():
    def st(mode, uid=0):
        return os.stat_result((mode, 0, 0, 1, uid, 0, 0, 0, 0, 0))
    record_file, folder = stat.S_IFREG | 0o600, stat.S_IFDIR | 0o700
    assert root_only(st(record_file), st(folder))
    assert root_only(st(stat.S_IFREG | 0o400), st(stat.S_IFDIR | 0o755))
    for record_stat, folder_stat in (
            (st(record_file, uid=1000), st(folder)),                  # another user's record
            (st(stat.S_IFREG | 0o640), st(folder)),                    # its group may read it
            (st(stat.S_IFREG | 0o602), st(folder)),                    # anyone may write it
            (st(stat.S_IFLNK | 0o600), st(folder)),                    # a link, not the record
            (st(record_file), st(folder, uid=1000)),                   # in another user's folder
            (st(record_file), st(stat.S_IFDIR | 0o770)),               # a folder others may write
            (st(record_file), st(stat.S_IFDIR | 0o1777))):             # /tmp-like
        assert not root_only(record_stat, folder_stat), (oct(record_stat.st_mode), oct(folder_stat.st_mode))
