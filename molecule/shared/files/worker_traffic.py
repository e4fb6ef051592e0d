"""Runs on a worker as the worker's user. Sends COUNT tasks through the broker to this
worker's own queue, one at a time with GAP idle seconds between them (longer than the
database's idle timeout, so pooled result-backend connections go stale), and prints how
many results were stored and read back."""
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

queue, count, gap = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
stored = 0
for number in range(count):
    if number:
        time.sleep(gap)
    nonce = uuid.uuid4().hex
    result = app.send_task("celery.accumulate", args=[nonce], kwargs={"index": 0}, queue=queue)
    try:
        stored += result.get(timeout=60) == nonce
    except Exception as exc:  # a lost result is what is being counted, not a test error
        print("task %s: %r" % (result.id, exc), file=sys.stderr)
print(json.dumps({"sent": count, "stored": stored}))
