"""Runs on a worker as the worker's user, with its AIRFLOW_HOME, and drives Celery through
the worker's own Celery app, loaded as `airflow celery worker` loads it. Independent of the
role's probe, so it can catch the probe's mistakes.

  worker_celery.py roundtrip QUEUE KEY...     KEYs' effective values, then one task's result
  worker_celery.py traffic QUEUE COUNT GAP    COUNT tasks, GAP idle seconds apart
  worker_celery.py burst QUEUE COUNT          COUNT tasks at once: result-store throughput
  worker_celery.py send QUEUE NAME ARGS_JSON  sends a task, prints its id
  worker_celery.py state TASK_ID              a task's state and result
  worker_celery.py conf KEY...                KEYs' values in a fresh app built from the files
  worker_celery.py live NODE KEY              KEY's value in the running worker NODE (inspect conf)
  worker_celery.py active NODE                ids of the tasks NODE runs (inspect active)
  worker_celery.py queues NODE                names of the queues NODE consumes (inspect active_queues)

Each prints one JSON line last. celery.accumulate is built into Celery, so every worker
knows it; with index=0 it returns its first argument."""
import importlib
import json
import sys
import time
import uuid

for path in ("airflow.providers.celery.executors.celery_executor", "airflow.executors.celery_executor"):
    try:
        app = importlib.import_module(path).app
        break
    except ModuleNotFoundError:
        continue
else:
    sys.exit("no Celery app module found")


def echo(queue, value):
    return app.send_task("celery.accumulate", args=[value], kwargs={"index": 0}, queue=queue)


def stored(result, value):
    try:
        return result.get(timeout=120) == value
    except Exception as exc:  # a lost result is what is being counted, not an error here
        print("task %s: %r" % (result.id, exc), file=sys.stderr)
        return False


def roundtrip(queue, *keys):
    nonce = uuid.uuid4().hex
    result = echo(queue, nonce)
    return {"conf": {key: app.conf.get(key) for key in keys}, "task_id": result.id,
            "sent": nonce, "got": result.get(timeout=60)}


def traffic(queue, count, gap):
    ok = 0
    for number in range(int(count)):
        if number:
            time.sleep(float(gap))
        nonce = uuid.uuid4().hex
        ok += stored(echo(queue, nonce), nonce)
    return {"sent": int(count), "stored": ok}


def burst(queue, count):
    start = time.monotonic()
    results = [echo(queue, number) for number in range(int(count))]
    ok = sum(stored(result, number) for number, result in enumerate(results))
    elapsed = time.monotonic() - start
    return {"sent": int(count), "stored": ok, "seconds": elapsed, "per_second": ok / elapsed}


def send(queue, name, args):
    return app.send_task(name, args=json.loads(args), queue=queue).id


def state(task_id):
    result = app.AsyncResult(task_id)
    return {"state": result.state, "result": result.result}


def conf(*keys):
    return {key: app.conf.get(key) for key in keys}


def live(node, key):
    replies = app.control.inspect(destination=[node], timeout=5).conf() or {}
    return (replies.get(node) or {}).get(key)


def active(node):
    replies = app.control.inspect(destination=[node], timeout=5).active() or {}
    return [task.get("id") for task in replies.get(node) or []]


def queues(node):
    replies = app.control.inspect(destination=[node], timeout=5).active_queues() or {}
    return sorted(queue.get("name") for queue in replies.get(node) or [])


COMMANDS = {"roundtrip": roundtrip, "traffic": traffic, "burst": burst, "send": send, "state": state,
            "conf": conf, "live": live, "active": active,
            "queues": queues}
if __name__ == "__main__":
    print(json.dumps(COMMANDS[sys.argv[1]](*sys.argv[2:]), default=repr))
