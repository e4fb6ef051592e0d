#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Restarts an Airflow Celery worker, after draining it, or takes one just restarted, and waits until it is active
and answers a Celery ping with this run's settings."""

from __future__ import annotations

DOCUMENTATION = r"""
module: airflow_celery_config_ping
short_description: Restart an Airflow Celery worker and wait until it answers, on this run's settings
description:
  - With C(restart), restarts the worker unit first (C(systemctl restart)); the Python that pings imports Airflow
    meanwhile, so the restart and that import take the time of the longer one.
  - Waits until the worker unit is active and its worker answers a Celery ping over its own broker, for at most
    C(install.timeout) seconds, then asks it for the digest of the settings it started with.
  - The return value C(answered) is false, with the reason in C(problem), when it does not answer, or answers with
    another digest than C(install.digest); the journal's error lines are part of the reason. Never fails on that;
    the role rolls back.
  - With C(drain), drains the running worker first; see that option.
  - Changes nothing without C(restart). In check mode, drains and restarts nothing and reports the restart as a
    change.
options:
  install:
    type: dict
    required: true
    description:
      - The worker install; the same dict as the C(install) option of
        M(airflow_fleet.celery_config.airflow_celery_config_facts).
    suboptions:
      python:
        type: path
        required: true
        description: The worker venv's interpreter.
      airflow_home:
        type: path
        required: true
        description: The worker's AIRFLOW_HOME; the module fails when the unit runs with another one.
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
        description: The Celery config module's name, a Python identifier.
      dict_name:
        type: str
        required: true
        description: The dict in the module that C(celery_config_options) points at, a Python identifier.
      settings:
        type: dict
        default: {}
        description: Managed Celery settings and their intended values.
      node_name:
        type: str
        default: ''
        description: Celery node name of the worker; empty means C(celery@<hostname>).
      timeout:
        type: int
        default: 120
        description: Seconds M(airflow_fleet.celery_config.airflow_celery_config_ping) waits.
      extra_setting_names:
        type: list
        elements: str
        default: []
        description: Setting names to accept beyond Celery's own.
      manage_env:
        type: bool
        default: false
        description: Accept a unit environment that sets C(celery_config_options); the role then rewrites it.
      read_idle_timeout:
        type: bool
        default: false
        description:
          - Connect to the result-backend database as the worker would and report the server's idle timeout in
            the return value C(db_idle_timeout); a database it cannot read gives a warning, not a failure.
      dropin_path:
        type: path
        description: The role's drop-in of the unit; its time counts as a config change.
      digest:
        type: str
        default: ''
        description: The return value C(digest) of this module, what the check and the ping expect the worker to run.
      stop_timeout:
        type: int
        default: 0
        description: Seconds a stop waits for running tasks; named in the warning about them.
  remote_control:
    type: bool
    default: true
    description:
      - Whether the restarted worker's config leaves Celery's remote control on (C(worker_enable_remote_control)). Off,
        it cannot answer a ping, so the module waits until the unit is active, then requires it to stay active, with
        the same main process, for 10 s.
  restart:
    type: bool
    default: false
    description: Restart the worker unit first.
  take_fresh:
    type: bool
    default: false
    description:
      - With C(restart), and not with C(drain), a worker whose process started after the last change to its config
        files (the Celery config module, airflow.cfg, the role's drop-in, an EnvironmentFile that sets
        C(celery_config_options), and their folders) already runs them; it is not restarted, only waited for
        (return value C(took_fresh)).
      - The role's rollback uses it. Once the files are back, systemd may already have started the worker again
        (C(Restart=)). Stopping a worker that is still starting can take the whole stop timeout, as Celery 4.4.7
        (Airflow 1.10.15) may miss the SIGTERM then.
  drain:
    type: dict
    description:
      - Drain the running worker before the restart (needs C(restart)), in the same Python that then pings it. The
        first round writes a note naming the queues (in C(note_dir)), so that a run that dies mid-drain leaves them
        known to M(airflow_fleet.celery_config.airflow_celery_config_drain), which gives them back; the note also
        holds when the drain began, the moment the first round cancelled the consumers, from which C(timeout)
        counts. Each round cancels the worker's consumer of each queue (Celery's C(cancel_consumer)), so that the
        other workers take the queue's new tasks, then waits up to C(round) seconds until the worker has no active
        and no reserved task (C(inspect active), C(inspect reserved)).
      - Then, with the return value C(drain), restarts the worker where it is
        idle, or where the drain has expired and C(busy_worker) is C(restart); gives it its queues back where the
        drain has expired and C(busy_worker) is C(defer) (C(deferred)); and otherwise leaves it drained and
        restarts nothing (C(waiting)); call it again for the next round.
      - A worker that cannot be drained is restarted without a drain, with the reason in C(drain.problem).
      - Once the restarted worker answers, the note is removed, as the new worker consumes its configured queues.
    suboptions:
      queues:
        type: list
        elements: dict
        required: true
        description:
          - The queues the worker consumes, as the live check's C(live.queues) gives them (C(name), C(exchange),
            C(exchange_type), C(routing_key)). A note left by an earlier drain adds its own.
      timeout:
        type: int
        default: 600
        description: Seconds the whole drain may wait for running tasks, counted from the drain's first round.
      round:
        type: int
        description: Seconds one round waits at most. Unset, a quarter of C(timeout), from 5 to 30 s.
      busy_worker:
        type: str
        default: defer
        choices: [defer, restart]
        description: What to do with a worker still busy when the drain has expired.
      note_dir:
        type: path
        default: /var/lib/airflow_celery_config
        description: The folder of the drain's note.
author: airflow_celery_config contributors (@airflow-fleet)
"""

EXAMPLES = r"""
- name: Restart the worker and wait until it answers a Celery ping
  airflow_celery_config_ping:
    install: "{{ install | combine({'digest': facts.digest}) }}"
    restart: true
  register: ping

- name: Drain the worker, restart it once idle and wait until it answers
  airflow_celery_config_ping:
    install: "{{ install | combine({'digest': facts.digest}) }}"
    restart: true
    drain:
      queues: "{{ check.live.queues }}"
      timeout: 600
  register: ping
"""

RETURN = r"""
answered:
  description: The restarted worker answered a ping, with this run's digest where it carries one.
  returned: always
  type: bool
restarted:
  description: The module restarted the unit (C(restart), not in check mode).
  returned: always
  type: bool
took_fresh:
  description: With C(take_fresh), the worker had started since its config files changed, so it was not restarted.
  returned: always
  type: bool
problem:
  description: Why it did not.
  returned: when answered is false
  type: str
node_name:
  description: The Celery node name pinged.
  returned: when the unit became active
  type: str
live:
  description: The worker's answer to C(inspect conf) (node, answered, digest).
  returned: when it answered
  type: dict
imports:
  description: How many times this call imported Airflow in the worker's interpreter.
  returned: always
  type: int
drain:
  description:
    - The drain's round, and what followed it. C(drainable) says whether the worker answered the drain's
      remote-control commands (if not, C(problem) says why); C(queues) names the queues cancelled and C(note) the
      note's path; C(idle) means no active and no reserved task, C(expired) that the drain has waited C(timeout)
      seconds, C(left) the seconds of it left; C(busy) lists the tasks it waits for, the longest running first, each
      with C(name), C(id) and C(seconds) (null for a reserved task), C(busy_summary) says how many and the longest
      one's age in one phrase, and C(busy_text) names them for the log. C(waiting) is true where the worker is left drained
      for another round; C(deferred) where it was busy past the drain and given its queues back, on its old
      config, C(gave_back) saying whether it took them (if not, C(problem) says why and the note stays).
  returned: with the drain option, not in check mode
  type: dict
"""

import os
import re
import time

from ansible.module_utils.basic import AnsibleModule
# The role's own module_utils; as the collection airflow_fleet.celery_config, its plugins/module_utils.
try:
    from ansible.module_utils.airflow_celery_config_drain import NOTE_DIR, DrainThenRestart
    from ansible.module_utils.airflow_celery_config_unit import parse_show, start_time, started_after_change
    from ansible.module_utils.airflow_celery_config_worker import INSTALL_SPEC, Worker
except ImportError:
    from ansible_collections.airflow_fleet.celery_config.plugins.module_utils.airflow_celery_config_drain import (
        NOTE_DIR, DrainThenRestart)
    from ansible_collections.airflow_fleet.celery_config.plugins.module_utils.airflow_celery_config_unit import (
        parse_show, start_time, started_after_change)
    from ansible_collections.airflow_fleet.celery_config.plugins.module_utils.airflow_celery_config_worker import INSTALL_SPEC, Worker

ARGUMENT_SPEC = dict(
    install=INSTALL_SPEC, remote_control=dict(type="bool", default=True), restart=dict(type="bool", default=False),
    take_fresh=dict(type="bool", default=False),
    drain=dict(type="dict", default=None, options=dict(
        queues=dict(type="list", elements="dict", required=True),
        timeout=dict(type="int", default=600),
        round=dict(type="int", default=None),
        busy_worker=dict(type="str", default="defer", choices=["defer", "restart"]),
        note_dir=dict(type="path", default=NOTE_DIR))))
# Seconds a worker without remote control must stay active after its start to count as back:
# it cannot answer a ping, and Airflow 2 workers that fail can exit a few seconds after starting.
SETTLE = 10


def journal_errors(module, unit, since):
    """The distinct error lines the unit logged since `since`: the reason a worker did not
    start is often a few tracebacks up, behind a misleading last one."""
    out = module.run_command(["journalctl", "-u", unit, "--no-pager", "-o", "cat", "--since", "@%d" % since])[1]
    errors = []
    for line in out.splitlines():
        line = line.strip()
        if re.match(r"[\w.]*(Error|Exception)\b.*:", line) and line not in errors:
            errors.append(line)
    return "; errors in its journal: " + " | ".join(errors[:5]) if errors else ""


def main_pid(module, unit):
    return module.run_command(["systemctl", "show", unit, "--property=MainPID", "--value"])[1].strip()


def unit_state(module, unit):
    return module.run_command(["systemctl", "is-active", unit])[1].strip()


def runs_its_files(module, unit, worker):
    """Whether the unit's worker is active and started after its config files last changed."""
    props = parse_show(module.run_command(
        ["systemctl", "show", unit, "--property=ActiveState,ExecMainStartTimestampMonotonic"])[1])
    return props.get("ActiveState") == "active" and started_after_change(
        start_time(props.get("ExecMainStartTimestampMonotonic")), worker.config_files())


def wait_started(module, unit, deadline):
    """The unit's state once it is active, or has failed or stopped, or at the deadline: after
    `restart` has returned, "inactive" or "failed" means the new process exited (Airflow 2
    workers can exit quietly, with status 0)."""
    state = unit_state(module, unit)
    while time.time() < deadline and state not in ("active", "failed", "inactive"):
        time.sleep(1)
        state = unit_state(module, unit)
    return state


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    p = module.params["install"]
    restart, drain, remote_control = module.params["restart"], module.params["drain"], module.params["remote_control"]
    if drain and not restart:
        module.fail_json(msg="drain needs restart: it drains the worker before restarting it")
    if module.params["take_fresh"] and (drain or not restart):
        module.fail_json(msg="take_fresh goes with restart and without drain")
    if restart and module.check_mode:
        module.exit_json(changed=True, restarted=False, took_fresh=False, answered=False, check_mode=True, imports=0)
    unit = p["service"]
    worker = Worker(module, p)
    started = time.time()
    run = {"state": "", "restart_error": "", "restarted": False, "took_fresh": False}

    def restart_and_wait():
        """Restart the unit, wait for it to start, and say whether and how long to ping."""
        if restart and module.params["take_fresh"] and runs_its_files(module, unit, worker):
            run["took_fresh"] = True
        elif restart:
            run["restarted"] = True
            rc, out, err = module.run_command(["systemctl", "restart", unit])
            if rc != 0:
                run["restart_error"] = "; systemctl restart said: " + (err.strip() or out.strip())
        deadline = time.time() + p["timeout"]
        run["state"] = wait_started(module, unit, deadline)
        # Without remote control the new worker cannot answer a ping: it is watched instead.
        return "go %.1f" % max(1, deadline - time.time()) if run["state"] == "active" and remote_control else "stop"

    result = worker.result()
    answer = {}
    if drain:
        # The running worker is drained through its remote control, whatever the new config says.
        drained = DrainThenRestart(drain, unit, restart_and_wait)
        answer = worker.ask("ping", meanwhile=drained.decide, drain=drained.queues, drain_wait=drained.wait)
        result["drain"] = drained.report(answer)
    elif remote_control:
        answer = worker.ask("ping", meanwhile=lambda _halfway: restart_and_wait())
    else:
        restart_and_wait()
    result.update(restarted=run["restarted"], took_fresh=run["took_fresh"], imports=1 if drain or remote_control else 0,
                  changed=run["restarted"] or bool(drain and result["drain"]["changed"]))
    if restart and not (run["restarted"] or run["took_fresh"]):
        # Drained for another round, or given its queues back: the worker runs on as it was.
        module.exit_json(answered=False, **result)
    if not remote_control:
        if run["state"] == "active":
            pid = main_pid(module, unit)
            time.sleep(SETTLE)
            result["answered"] = unit_state(module, unit) == "active" and main_pid(module, unit) == pid
        else:
            result["answered"] = False
        if not result["answered"]:
            result["problem"] = "the worker unit %s did not stay active for %d s after its restart%s%s" % (
                unit, SETTLE, run["restart_error"], journal_errors(module, unit, started - 5))
    else:
        if run["state"] == "active":
            result.update(answer)
        result["answered"] = bool(result.get("replies"))
        live = result.get("live") or {}
        if result["answered"] and p["digest"] and live.get("answered") and live.get("digest") != p["digest"]:
            # It came back, but not on this run's config: as bad as not coming back.
            result["answered"] = False
            result["problem"] = "the restarted worker %s answers with settings %s, not %s" % (
                live["node"], live.get("digest") or "not given by this role", p["digest"])
        if not result["answered"] and "problem" not in result:
            state = unit_state(module, unit)
            status = module.run_command(["systemctl", "show", unit, "--property=ExecMainStatus", "--value"])[1]
            result["problem"] = "the worker unit %s is %s (its last process exited with status %s) and %s did not " \
                "answer a Celery ping within %ss%s%s%s" % (
                    unit, state, status.strip() or "?", result.get("node_name", "its worker"),
                    p["timeout"], "; the broker did not answer either: " + result["broker_problem"]
                    if result.get("broker_problem") else "", run["restart_error"], journal_errors(module, unit, started - 5))
    if result["answered"] and drain and os.path.exists(result["drain"]["note"]):
        # The restarted worker consumes the queues it is configured for: the note has nothing left to give back.
        os.remove(result["drain"]["note"])
        result["changed"] = True
    module.exit_json(**result)


if __name__ == "__main__":
    main()
