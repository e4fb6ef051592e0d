# -*- coding: utf-8 -*-
"""Counts, per host, the task results and the remote executions of one Ansible run.

For benchmarks/fleet_speed.py and benchmarks/rolling_load.py. Two numbers per host:
- results: task results that ran on the host (loop items count one each; skipped ones do not);
- execs: commands the connection ran in the host (`docker exec`), i.e. remote module
  executions and their round trips. Controller-only actions (debug, set_fact, assert, meta)
  have a result but no exec.
The exec count comes from wrapping the community.docker.docker connection's exec_command;
Ansible forks its workers from this process, so the wrapper is in place in every worker,
which appends one line per exec to FLEET_COUNT_FILE.
"""

from __future__ import annotations

import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = r"""
name: fleet_count
type: aggregate
short_description: Count task results and remote executions per host
description:
  - Writes C(FLEET_COUNT_FILE).results.json (results per host) and appends one line per
    remote exec to C(FLEET_COUNT_FILE).
requirements:
  - environment variable FLEET_COUNT_FILE
"""

COUNT_FILE = os.environ.get("FLEET_COUNT_FILE")


def _wrap_docker_connection():
    from ansible_collections.community.docker.plugins.connection import docker

    original = docker.Connection.exec_command
    if getattr(original, "_fleet_count", False):
        return

    def exec_command(self, cmd, in_data=None, sudoable=False):
        host = self.get_option("remote_addr") or "?"
        # One short write with O_APPEND: lines from parallel workers do not interleave.
        fd = os.open(COUNT_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (host + "\n").encode())
        finally:
            os.close(fd)
        return original(self, cmd, in_data=in_data, sudoable=sudoable)

    exec_command._fleet_count = True
    docker.Connection.exec_command = exec_command


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "fleet_count"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.results = {}
        # Wall seconds of each task, from its start to its last host's result (linear
        # strategy: tasks run one after the other over all hosts), and when it started,
        # in seconds since this run's start.
        self.started = time.monotonic()
        self.tasks = []
        if COUNT_FILE:
            _wrap_docker_connection()

    def v2_playbook_on_task_start(self, task, is_conditional):
        now = time.monotonic()
        self.tasks.append({"name": task.get_name(), "action": task.action, "start": now, "end": now})

    v2_playbook_on_handler_task_start = v2_playbook_on_task_start

    def _count(self, result):
        host = result._host.get_name()
        self.results[host] = self.results.get(host, 0) + 1
        if self.tasks:
            self.tasks[-1]["end"] = time.monotonic()

    def v2_runner_on_skipped(self, result):
        if self.tasks:
            self.tasks[-1]["end"] = time.monotonic()

    def v2_runner_on_ok(self, result):
        # A loop's own summary result comes after its items, which were counted already.
        if not result._result.get("results"):
            self._count(result)

    v2_runner_on_failed = v2_runner_on_ok
    v2_runner_on_unreachable = v2_runner_on_ok
    v2_runner_item_on_ok = _count
    v2_runner_item_on_failed = _count

    def v2_playbook_on_stats(self, stats):
        self._write()

    def _write(self):
        if COUNT_FILE:
            with open(COUNT_FILE + ".results.json", "w", encoding="utf-8") as out:
                json.dump({"results": self.results,
                           "tasks": [{"name": t["name"], "action": t["action"],
                                      "at": round(t["start"] - self.started, 2),
                                      "seconds": round(t["end"] - t["start"], 2)} for t in self.tasks]}, out)
