# -*- coding: utf-8 -*-
"""The drain's note and its report, without Ansible or Celery, so they can be unit tested.

A drain cancels the worker's consumers before the note that names them could be lost with the
run: the note is written first, and a later run that finds it gives the queues back."""

from __future__ import annotations

import json
import os
import re


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
