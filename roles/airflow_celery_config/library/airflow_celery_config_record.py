#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Keeps, and compares a worker with, the record of its last full check."""

from __future__ import annotations

DOCUMENTATION = r"""
module: airflow_celery_config_record
short_description: Tell whether the record of a worker's last full check still holds, or keep one
description:
  - Computes the fingerprint of every input that decides the worker's Celery config without
    importing Airflow, in one short run of the worker's interpreter. The role's inputs (as the
    digest C(inputs_digest)); the contents of the Celery config module, airflow.cfg, the role's
    drop-in, the unit file, its drop-ins and its EnvironmentFile=s, with the owner and mode of each and
    of every folder above it; the unit's user, group,
    environment, working directory and ExecStart as systemd loaded them; the worker's interpreter,
    its sys.path (PYTHONPATH and .pth files included) and every distribution installed there,
    with its version.
  - Without C(in_sync_report), compares it with the record (return value C(holds)). The record holds when the fingerprint
    is the same, the unit is active, and its worker is the process the record was made with or
    one started after the fingerprinted files last changed. Never changes anything.
  - With C(in_sync_report), keeps the fingerprint, the worker process and C(in_sync_report) as the record, readable by
    root only, in C(dir). Call it only after a full check found the running worker in sync.
  - The record is the role's own cache, not the worker's config; writing it reports no change.
    Nothing is written in check mode.
  - The fingerprint does not hold the database server's idle timeout, or config Airflow reads from
    a secrets backend or a C(_cmd) option; a run with the role variable C(airflow_celery_config_full_check)
    true sees them.
options:
  install:
    type: dict
    required: true
    description: The worker install, as the role's inputs name it.
    suboptions:
      python:
        type: path
        required: true
        description: The worker venv's interpreter.
      airflow_home:
        type: path
        required: true
        description: The worker's AIRFLOW_HOME, where the unit's environment does not set one.
      cfg_path:
        type: path
        required: true
        description: The airflow.cfg the worker reads.
      service:
        type: str
        required: true
        description: The worker's systemd unit.
      module_dir:
        type: path
        required: true
        description: The folder of the Celery config module.
      module_name:
        type: str
        required: true
        description: The Celery config module's name; its file is C(<module_dir>/<module_name>.py).
      dropin_path:
        type: path
        required: true
        description: The role's drop-in of the unit.
  inputs_digest:
    type: str
    required: true
    description: A digest of every role input that decides what the role writes (settings and the role's own files included).
  in_sync_report:
    type: dict
    description: The role's report of a full check that found the worker in sync, to keep with the fingerprint.
  dir:
    type: path
    default: /var/lib/airflow_celery_config
    description: Where records are kept, one per worker unit; created root-only.
author: airflow_celery_config contributors (@airflow-fleet)
"""

EXAMPLES = r"""
- name: Compare the worker with the record of its last full check
  airflow_celery_config_record:
    install:
      python: /opt/airflow/venv/bin/python
      airflow_home: /home/airflow/airflow
      cfg_path: /home/airflow/airflow/airflow.cfg
      service: airflow-worker
      module_dir: /home/airflow/airflow/config
      module_name: my_celery_config
      dropin_path: /etc/systemd/system/airflow-worker.service.d/zz-airflow-celery-config.conf
    inputs_digest: "{{ inputs | to_json | hash('sha256') }}"
  register: record
"""

RETURN = r"""
holds:
  description: Whether the record still describes the running worker.
  returned: without in_sync_report
  type: bool
why:
  description: Why it does not (what changed since the record, that there is none, or that a drain was cut short).
  returned: without in_sync_report, when holds is false
  type: str
report:
  description: The recorded report, as a run that writes and restarts nothing gives it (C(airflow_imports) 0, C(check) recorded).
  returned: without in_sync_report, when holds is true
  type: dict
path:
  description: The record's file.
  returned: always
  type: str
recorded_at:
  description: When the record was made (UTC).
  returned: when holds is true, or with in_sync_report
  type: str
"""

import inspect
import json
import os
import re
import tempfile
import time

from ansible.module_utils.basic import AnsibleModule
# The role's own module_utils; as the collection airflow_fleet.celery_config, its plugins/module_utils.
try:
    from ansible.module_utils import airflow_celery_config_installed as installed_script
    from ansible.module_utils.airflow_celery_config_drain import note_path
    from ansible.module_utils.airflow_celery_config_record import (
        RECORD_VERSION, fingerprint, holds, recorded_report, root_only, sha256)
    from ansible.module_utils.airflow_celery_config_unit import (
        UnitError, env_file_entry, exec_argv, newest_mtime, run_python, start_time, systemd_unit, unit_user, worker_process_env,
        working_directory)
    from ansible.module_utils.airflow_celery_config_worker import INSTALL_OPTIONS
except ImportError:
    from ansible_collections.airflow_fleet.celery_config.plugins.module_utils import airflow_celery_config_installed as installed_script
    from ansible_collections.airflow_fleet.celery_config.plugins.module_utils.airflow_celery_config_drain import note_path
    from ansible_collections.airflow_fleet.celery_config.plugins.module_utils.airflow_celery_config_record import (
        RECORD_VERSION, fingerprint, holds, recorded_report, root_only, sha256)
    from ansible_collections.airflow_fleet.celery_config.plugins.module_utils.airflow_celery_config_unit import (
        UnitError, env_file_entry, exec_argv, newest_mtime, run_python, start_time, systemd_unit, unit_user, worker_process_env,
        working_directory)
    from ansible_collections.airflow_fleet.celery_config.plugins.module_utils.airflow_celery_config_worker import INSTALL_OPTIONS

# Seconds the interpreter gets to list what it imports from.
INTERPRETER_TIMEOUT = 60


def file_facts(path):
    """The file's content digest (None if absent), and who owns and may write it and each folder
    above it, on its own path and behind any link: the full check refuses folders others can write."""
    try:
        with open(path, "rb") as handle:
            content = sha256(handle.read())
    except OSError:
        content = None
    modes = {}
    for start in (path, os.path.realpath(path)):
        folder = start
        while folder not in modes:
            try:
                st = os.stat(folder)
                modes[folder] = [st.st_mode, st.st_uid, st.st_gid]
            except OSError:
                modes[folder] = None
            folder = os.path.dirname(folder)
    return {"content": content, "real": os.path.realpath(path), "modes": modes}


def read_host(module, p):
    """(fingerprint, process, active, started_at, files_changed_at) of the worker as it is now."""
    props, unit_env, _origin, _files = systemd_unit(module, p["service"])
    user = unit_user(props, p["service"])
    paths = [os.path.join(p["module_dir"], p["module_name"] + ".py"), p["cfg_path"], p["dropin_path"],
             props.get("FragmentPath")] + props.get("DropInPaths", "").split()
    paths += [env_file_entry(entry)[0] for entry in props["EnvironmentFiles"]]
    paths = [path for path in paths if path]
    home = unit_env.get("AIRFLOW_HOME", p["airflow_home"])
    answer, problem = run_python(p["python"], inspect.getsource(installed_script), {},
                                 user, worker_process_env(user, unit_env, home),
                                 working_directory(props, user), INTERPRETER_TIMEOUT)
    if answer is None:
        raise UnitError("airflow_celery_config_python: %s could not list what it imports from. %s" % (p["python"], problem))
    unit = {key: props.get(key) for key in ("User", "Group", "Environment", "WorkingDirectory", "FragmentPath", "DropInPaths")}
    unit["EnvironmentFiles"] = props["EnvironmentFiles"]
    # The command only: systemd prints the running process's pid and times beside it.
    unit["ExecStart"] = [exec_argv(entry) for entry in props["ExecStart"]]
    now = fingerprint(p["inputs_digest"], {path: file_facts(path) for path in paths}, unit, answer)
    try:
        with open("/proc/sys/kernel/random/boot_id") as handle:
            boot_id = handle.read().strip()
    except OSError:
        boot_id = None
    process = {"boot_id": boot_id, "pid": props.get("MainPID"), "start_usec": props.get("ExecMainStartTimestampMonotonic")}
    return (now, process, props.get("ActiveState") == "active",
            start_time(props.get("ExecMainStartTimestampMonotonic")), newest_mtime(paths))


def load(path):
    """The record at `path`, or (None, why not)."""
    try:
        st = os.lstat(path)
        folder = os.stat(os.path.dirname(path))
    except OSError:
        return None, "no record of a full check"
    if not root_only(st, folder):
        return None, "the record %s is not root's own (owner root, mode 0600, folder not writable by others)" % path
    try:
        with open(path) as handle:
            return json.load(handle), None
    except (OSError, ValueError) as exc:
        return None, "cannot read the record %s: %s" % (path, exc)


def write_record(path, record):
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        os.makedirs(folder, 0o700)
    os.chmod(folder, 0o700)
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".record-")
    try:
        with os.fdopen(handle, "w") as out:
            json.dump(record, out, sort_keys=True, indent=1)
        os.chmod(temporary, 0o600)
        os.rename(temporary, path)
    except Exception:
        os.unlink(temporary)
        raise


ARGUMENT_SPEC = dict(
    # The keys of the worker modules' install option it reads; the drop-in is always named here.
    install=dict(type="dict", required=True, options=dict(
        {key: INSTALL_OPTIONS[key] for key in ("python", "airflow_home", "cfg_path", "service", "module_dir", "module_name")},
        dropin_path=dict(type="path", required=True))),
    inputs_digest=dict(type="str", required=True),
    in_sync_report=dict(type="dict", default=None),
    dir=dict(type="path", default="/var/lib/airflow_celery_config"),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    p = dict(module.params["install"], inputs_digest=module.params["inputs_digest"])
    path = os.path.join(module.params["dir"], re.sub(r"[^A-Za-z0-9_.@-]", "_", p["service"]) + ".json")
    result = dict(changed=False, path=path)
    report = module.params["in_sync_report"]
    try:
        now, process, active, started_at, files_changed_at = read_host(module, p)
    except UnitError as exc:
        if report is not None:
            module.fail_json(msg="cannot record the full check: %s" % exc, **result)
        module.exit_json(holds=False, why=str(exc), **result)
    if report is not None:
        if report.get("state") != "in sync":
            module.fail_json(msg="only a worker found in sync is recorded, not one %r" % report.get("state"), **result)
        result["recorded_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        if not module.check_mode:
            write_record(path, {"version": RECORD_VERSION, "recorded_at": result["recorded_at"],
                                "fingerprint": now, "process": process, "report": report})
        module.exit_json(**result)
    record, why = load(path)
    if os.path.exists(note_path(module.params["dir"], p["service"])):
        # A drain cut short: the full check gives the worker its queues back.
        record, why = None, "a drain of the worker was cut short (its note is in %s)" % module.params["dir"]
    if record is not None:
        result["holds"], why = holds(record, now, process, active, started_at, files_changed_at)
    else:
        result["holds"] = False
    if result["holds"]:
        result["recorded_at"] = record["recorded_at"]
        result["report"] = recorded_report(record, record["recorded_at"])
    else:
        result["why"] = why
    module.exit_json(**result)


if __name__ == "__main__":
    main()
