"""Runs on a worker as the worker's user.
  worker_task.py send QUEUE NAME ARGS_JSON   sends a task, prints its id
  worker_task.py state TASK_ID               prints the task's state and result as JSON"""
import importlib
import json
import sys

for path in ("airflow.providers.celery.executors.celery_executor", "airflow.executors.celery_executor"):
    try:
        app = importlib.import_module(path).app
        break
    except ModuleNotFoundError:
        continue
else:
    sys.exit("no Celery app module found")

if sys.argv[1] == "send":
    print(app.send_task(sys.argv[3], args=json.loads(sys.argv[4]), queue=sys.argv[2]).id)
else:
    result = app.AsyncResult(sys.argv[2])
    print(json.dumps({"state": result.state, "result": result.result}, default=repr))
