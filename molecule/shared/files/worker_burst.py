"""Runs on a worker as the worker's user: sends COUNT tasks at once to QUEUE, waits for
every result, and prints the result-store throughput as JSON."""
import importlib
import json
import sys
import time

for path in ("airflow.providers.celery.executors.celery_executor", "airflow.executors.celery_executor"):
    try:
        app = importlib.import_module(path).app
        break
    except ModuleNotFoundError:
        continue
else:
    sys.exit("no Celery app module found")

queue, count = sys.argv[1], int(sys.argv[2])
start = time.monotonic()
results = [app.send_task("celery.accumulate", args=[n], kwargs={"index": 0}, queue=queue) for n in range(count)]
stored = 0
for n, result in enumerate(results):
    try:
        stored += result.get(timeout=120) == n
    except Exception as exc:  # a lost result is counted, not fatal
        print("task %s: %r" % (result.id, exc), file=sys.stderr)
elapsed = time.monotonic() - start
print(json.dumps({"sent": count, "stored": stored, "seconds": elapsed, "per_second": stored / elapsed}))
