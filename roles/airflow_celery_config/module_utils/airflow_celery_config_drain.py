# -*- coding: utf-8 -*-
"""The drain's note and its report, without Ansible or Celery, so they can be unit tested.

A drain cancels the worker's consumers before the note that names them could be lost with the
run: the note is written first, and a later run that finds it gives the queues back."""

from __future__ import annotations

import json
import os
import re
import time


# Where the drain module keeps its notes unless told otherwise; the facts module looks there.
NOTE_DIR = "/var/lib/airflow_celery_config"


def note_path(directory, service):
    """Where the drain of `service` keeps its note."""
    return os.path.join(directory, re.sub(r"[^A-Za-z0-9_.@-]", "_", service) + ".drain.json")


def read_note(path):
    """The note at `path` ({"queues": [{name, exchange, exchange_type, routing_key}], "started": epoch}),
    or None where there is none."""
    try:
        with open(path) as handle:
            note = json.load(handle)
    except FileNotFoundError:
        return None
    except ValueError:
        # A note cut short when its run died: its queues are lost, the drain is not.
        return {"queues": [], "started": os.path.getmtime(path)}
    return {"queues": [queue for queue in note.get("queues") or [] if isinstance(queue, dict) and queue.get("name")],
            "started": float(note.get("started") or 0)}


def write_note(path, queues, started):
    """Write the note atomically: a run killed while writing leaves the old note or the new one."""
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    temporary = path + ".tmp"
    with open(temporary, "w") as handle:
        json.dump({"queues": queues, "started": started}, handle)
    os.replace(temporary, path)


def merged(queues, more):
    """`queues` and those of `more` not among them, by name."""
    names = {queue["name"] for queue in queues}
    return list(queues) + [queue for queue in more if queue["name"] not in names]


def begin(path, note, queues):
    """Start a drain round: (queues, started). The queues are the note's and those of `queues`
    it lacks; the note is written before any consumer is cancelled, so a run that dies mid-drain
    leaves them known. The drain's clock runs from the note's start, or from now."""
    queues = merged(note["queues"] if note else [], queues)
    started = note["started"] if note else time.time()
    if note is None or len(queues) > len(note["queues"]):
        write_note(path, queues, started)
    return queues, started


def round_seconds(round_, timeout, left):
    """Seconds one round waits at most: `round_`, or a quarter of the drain timeout from 5 to
    30 s (often enough that the operator sees why the rollout waits, rarely enough to cost
    little), and never past the drain's end."""
    return min(round_ or min(30, max(5, timeout // 4)), left)


def seconds_left(started, timeout):
    return max(0, int(started + timeout - time.time()))


def outcome(found, started, timeout):
    """What a round found ({active, reserved, wall, monotonic}, as the worker answered) as the
    drain reports it: idle, expired, left, and the tasks it waits for."""
    busy = busy_tasks(found["active"], found["reserved"], found["wall"], found["monotonic"])
    left = seconds_left(started, timeout)
    return dict(idle=not busy, expired=left == 0, left=left, busy=busy, busy_summary=busy_summary(busy),
                busy_text=busy_text(busy))


def task_age(time_start, wall_now, monotonic_now):
    """Seconds a task has run. Celery reports its start as wall-clock time on some versions and
    as the worker host's monotonic clock on others; the drain asks from the same host."""
    if not time_start:
        return None
    now = wall_now if time_start > 1e9 else monotonic_now
    return max(0, int(now - time_start))


def busy_tasks(active, reserved, wall_now, monotonic_now):
    """The worker's active and reserved tasks as [{name, id, seconds}], the longest running
    first; a reserved task has not started (seconds None)."""
    tasks = [{"name": task.get("name"), "id": task.get("id"),
              "seconds": task_age(task.get("time_start"), wall_now, monotonic_now)} for task in active]
    tasks.sort(key=lambda task: -(task["seconds"] or 0))
    return tasks + [{"name": task.get("name"), "id": task.get("id"), "seconds": None} for task in reserved]


def busy_summary(tasks):
    """One phrase for the report: how many tasks, and the longest one's age."""
    if not tasks:
        return ""
    ages = [task["seconds"] for task in tasks if task["seconds"] is not None]
    return "%d task(s)%s" % (len(tasks), ", the longest running %d s" % max(ages) if ages else "")


def busy_text(tasks, limit=5):
    """The tasks for an operator at the terminal: name[id] and how long each has run."""
    parts = ["%s[%s] %s" % (task["name"], task["id"],
                            "reserved, not started" if task["seconds"] is None else "running %d s" % task["seconds"])
             for task in tasks[:limit]]
    return "; ".join(parts) + ("; and %d more" % (len(tasks) - limit) if len(tasks) > limit else "")


class DrainThenRestart(object):
    """One round of a drain before a restart (the ping module's `drain` option, `p`), run by the
    Python that then pings: the note first, then the child cancels the worker's consumers and
    waits for its tasks up to `wait` seconds and says what it found; `decide` then restarts the
    worker (`restart_and_wait`), or has the child give it its queues back, or leaves it drained
    for another round."""

    def __init__(self, p, unit, restart_and_wait):
        self.p = p
        self.restart_and_wait = restart_and_wait
        self.path = note_path(self.p["note_dir"], unit)
        self.note = read_note(self.path)
        self.queues, self.started = begin(self.path, self.note, self.p["queues"])
        self.wait = round_seconds(self.p["round"], self.p["timeout"], seconds_left(self.started, self.p["timeout"]))
        self.found = dict(note=self.path, queues=[queue["name"] for queue in self.queues],
                          changed=self.note is None or len(self.queues) > len(self.note["queues"]))

    def decide(self, halfway):
        """What the child does next, once `halfway()` gives what its round found: "go ..." (from
        `restart_and_wait`), "resume" or "stop"."""
        found = halfway()
        if found is None:
            # The child ended before it drained: the module fails with what it printed.
            return "stop"
        found = found["drain"]
        if self.note is None and found.get("cancelled_at"):
            # The drain timeout counts from when the worker stopped taking tasks, not from the
            # import of Airflow before that (seconds on a loaded host).
            self.started = found["cancelled_at"]
            write_note(self.path, self.queues, self.started)
        if found.get("problem"):
            # Restarted as a worker that cannot be drained: the new process consumes every queue.
            self.found.update(drainable=False, problem=found["problem"])
            return self.restart_and_wait()
        self.found.update(drainable=True, **outcome(found, self.started, self.p["timeout"]))
        if self.found["idle"] or (self.found["expired"] and self.p["busy_worker"] == "restart"):
            return self.restart_and_wait()
        if self.found["expired"]:
            self.found["deferred"] = True
            return "resume"
        return "stop"

    def report(self, answer):
        """The round's report, once the child is done: a deferred worker that took its queues
        back has no note left."""
        if self.found.get("deferred"):
            self.found["gave_back"] = bool(answer.get("resumed"))
            if self.found["gave_back"]:
                os.remove(self.path)
                self.found["changed"] = True
            else:
                self.found["problem"] = answer.get("resume_problem", "the worker's Python ended before it resumed")
        self.found["waiting"] = self.found.get("drainable", False) and not (
            self.found["idle"] or self.found["expired"])
        return self.found
