"""Runs on a worker as the worker's user: prints the effective Celery config, then sends a
task through the broker to this worker's own queue and reads its result back from the
result backend. Independent of the role's probe, so it can catch the probe's mistakes."""
import importlib
import json
import sys
import uuid

for path in ("airflow.providers.celery.executors.celery_executor", "airflow.executors.celery_executor"):
    try:
        app = importlib.import_module(path).app
        break
    except ModuleNotFoundError:
        continue
else:
    sys.exit("no Celery app module found")

queue, keys = sys.argv[1], sys.argv[2:]
nonce = uuid.uuid4().hex
# celery.accumulate is built into Celery, so every worker knows it; it returns args[index].
result = app.send_task("celery.accumulate", args=[nonce], kwargs={"index": 0}, queue=queue)
print(json.dumps({
    "conf": {key: app.conf.get(key) for key in keys},
    "task_id": result.id,
    "sent": nonce,
    "got": result.get(timeout=60),
}, default=repr))
