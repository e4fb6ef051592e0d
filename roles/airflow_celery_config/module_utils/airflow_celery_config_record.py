# -*- coding: utf-8 -*-
"""The record of a worker's last full check, and when it still holds.

After a full check found the running worker in sync, the role records on the host every input
that decides the worker's Celery config (its fingerprint) and the worker process it checked.
A later run that finds the same fingerprint, and the same worker process or one started after
those files last changed, reports the recorded result without importing Airflow."""

from __future__ import annotations

import copy
import hashlib
import json
import stat

# Raised when the record's layout changes, so an older record is never read as a newer one.
RECORD_VERSION = 1


def root_only(record_stat, folder_stat):
    """Whether only root could have written a record with lstat `record_stat` in a folder with
    stat `folder_stat`: a regular file (not a link) of root's that no one else may read or
    write, in a folder of root's that no one else may write. No other record decides anything."""
    return (stat.S_ISREG(record_stat.st_mode) and record_stat.st_uid == 0 and not record_stat.st_mode & 0o077
            and folder_stat.st_uid == 0 and not folder_stat.st_mode & 0o022)


def sha256(data):
    if not isinstance(data, bytes):
        data = json.dumps(data, sort_keys=True, separators=(",", ":")).encode("utf-8")
    return hashlib.sha256(data).hexdigest()


def fingerprint(inputs, files, unit, interpreter):
    """The parts a worker's Celery config is decided by, each named for a reader:
    `inputs` the digest of the role's own inputs (never the inputs: they hold credentials), `files`
    {path: content digest, owners and modes}, `unit` the unit's loaded properties that decide
    the worker's command and environment, `interpreter` the worker's Python and what it imports from."""
    return {"the role's inputs": inputs, "files": files, "the unit": unit,
            "the worker's Python and its installed packages": sha256(interpreter)}


def differences(recorded, now):
    """What changed from the recorded fingerprint to `now`, one phrase each."""
    out = []
    old_files, new_files = recorded.get("files", {}), now.get("files", {})
    for path in sorted(set(old_files) | set(new_files)):
        if old_files.get(path, "missing") != new_files.get(path, "missing"):
            out.append(path)
    for part in sorted(set(recorded) | set(now)):
        if part != "files" and recorded.get(part) != now.get(part):
            out.append(part)
    return out


def same_process(recorded, now):
    """Whether `now` is the very worker process the record was made with."""
    return bool(recorded) and bool(now.get("pid")) and all(
        recorded.get(key) == now.get(key) for key in ("boot_id", "pid", "start_usec"))


def holds(record, now_fingerprint, process, active, started_at, files_changed_at):
    """(True, None) if the record still describes the running worker, else (False, why).
    `process` identifies the running worker (boot_id, pid, start_usec); `started_at` is its
    start and `files_changed_at` the newest mtime of the files in the fingerprint, in epoch seconds."""
    if record is None:
        return False, "no record of a full check"
    if record.get("version") != RECORD_VERSION:
        return False, "the record was made by another version of the role"
    changed = differences(record.get("fingerprint", {}), now_fingerprint)
    if changed:
        return False, "changed since the full check of %s: %s" % (record.get("recorded_at"), ", ".join(changed))
    if not active:
        return False, "the worker unit is not active"
    # Another process of the same unit read the same files if it started after they last changed.
    if not same_process(record.get("process"), process) and (
            started_at is None or files_changed_at is None or started_at < files_changed_at):
        return False, "the worker restarted before its files last changed"
    return True, None


def recorded_report(record, recorded_at):
    """The report a run that finds the record holding gives: the recorded one, for a run that
    wrote and restarted nothing and imported Airflow nowhere."""
    report = copy.deepcopy(record["report"])
    report.update(module="matches", cfg="matches", changed_files=[], restarted=False, restart_reason=None,
                  restart_pending=False, links_followed=report.get("links_followed", []),
                  airflow_imports=0, read_from="record", check="recorded", check_reason=None,
                  checked_at=recorded_at)
    return report
