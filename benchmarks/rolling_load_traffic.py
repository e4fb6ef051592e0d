"""Task traffic for benchmarks/rolling_load.py. Runs in a worker container as the worker's
user, with its AIRFLOW_HOME and the worker venv's Python, and sends through the worker's own
Celery app, loaded as `airflow celery worker` loads it.

  rolling_load_traffic.py QUEUE TASK_SECONDS RATE STOP_FILE DRAIN_SECONDS [TASK_SECONDS_MAX SEED]

Sends acc.sleep_count(TASK_SECONDS) to QUEUE, RATE tasks a second on a fixed schedule, until
STOP_FILE exists (with TASK_SECONDS_MAX, each task runs a time drawn evenly between the two,
from a generator seeded with SEED); then waits up to DRAIN_SECONDS for every task to reach a
final state. Prints one JSON line last: each task's id, send time, run time and final state
(error text for failures), the executions the tasks noted in the broker's Redis (list
acc-runs: "<task id> <host> <start>"), the queue's length and the broker's unacknowledged
messages, sampled every second, and both 5 s after the drain (a message left unacknowledged
is delivered again after the broker's visibility_timeout).
Progress goes to stderr."""
import json
import os
import random
import sys
import time

import redis

# Copied beside this script: it loads the worker's app where each Airflow keeps it.
from worker_celery import app

RUNS_KEY = "acc-runs"
FINAL = ("SUCCESS", "FAILURE", "REVOKED")


def log(message):
    print("%s %s" % (time.strftime("%H:%M:%S"), message), file=sys.stderr, flush=True)


def main(queue, task_seconds, rate, stop_file, drain, task_seconds_max=None, seed="0"):
    task_seconds, rate, drain = float(task_seconds), float(rate), float(drain)
    longest = float(task_seconds_max) if task_seconds_max else task_seconds
    durations = random.Random(int(seed))
    broker = redis.Redis.from_url(app.conf.broker_url)
    broker.delete(RUNS_KEY)
    sent, samples = [], []

    def sample():
        samples.append([round(time.time(), 3), broker.llen(queue), broker.hlen("unacked")])
        if len(samples) % 10 == 0:
            log("sent %d, queued %d, unacked %d" % (len(sent), samples[-1][1], samples[-1][2]))

    log("sending acc.sleep_count(%g to %g) to %s at %g/s until %s exists" % (task_seconds, longest, queue, rate, stop_file))
    start = next_sample = time.time()
    while not os.path.exists(stop_file):
        now = time.time()
        if now >= next_sample:
            sample()
            next_sample += 1
        due = start + len(sent) / rate
        if now >= due:
            seconds = round(durations.uniform(task_seconds, longest), 1)
            task_id = app.send_task("acc.sleep_count", args=[seconds], queue=queue).id
            sent.append([task_id, round(time.time(), 3), seconds])
        else:
            time.sleep(max(0.0, min(due, next_sample) - now))
    stopped = time.time()
    log("stopped after %d tasks; draining for up to %g s" % (len(sent), drain))
    states, errors = {}, {}
    pending = [task_id for task_id, _, _ in sent]
    while pending:
        for task_id in pending:
            result = app.AsyncResult(task_id)
            states[task_id] = result.state
            if result.state == "FAILURE":
                errors[task_id] = repr(result.result)
        pending = [task_id for task_id in pending if states[task_id] not in FINAL]
        if not pending or time.time() - stopped > drain:
            break
        sample()
        time.sleep(2)
    drained = time.time()
    log("drained in %.0f s, %d without a final state" % (drained - stopped, len(pending)))
    # A worker acknowledges a message (task_acks_late) just after storing its result: give the
    # last acknowledgements a moment, then see what is left in the broker.
    time.sleep(5)
    left = {"queued": broker.llen(queue), "unacknowledged": broker.hlen("unacked")}
    runs = [entry.decode().split() for entry in broker.lrange(RUNS_KEY, 0, -1)]
    return {"queue": queue, "task_seconds": task_seconds, "rate": rate, "started": start, "stopped": stopped,
            "drained": drained, "left": left, "sent": sent, "states": states, "errors": errors,
            "runs": [[task_id, host, float(at)] for task_id, host, at in runs], "samples": samples}


print(json.dumps(main(*sys.argv[1:])))
