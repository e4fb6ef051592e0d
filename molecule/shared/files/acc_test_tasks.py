"""Tasks that run for a while, for the graceful-restart tests and benchmarks/rolling_load.py.
The test fleet's workers load them through Celery's `include` setting."""
import os
import socket
import time

from celery import shared_task


@shared_task(name="acc.sleep")
def sleep(seconds):
    time.sleep(seconds)
    return seconds


@shared_task(name="acc.hold")
def hold(marker, limit):
    """Creates MARKER.started, then runs until MARKER.release exists on the worker's host, or
    for LIMIT seconds at most: a task whose end the test decides, so that a proof about a
    restart that catches a running task does not depend on how fast the machine is. Returns
    whether it was released."""
    open(marker + ".started", "w").close()
    deadline = time.monotonic() + limit
    while not os.path.exists(marker + ".release") and time.monotonic() < deadline:
        time.sleep(0.2)
    return os.path.exists(marker + ".release")


@shared_task(name="acc.sleep_count", bind=True)
def sleep_count(self, seconds):
    """acc.sleep that first notes "<task id> <host> <start time>" in the Redis list acc-runs on
    the broker, so a task that runs twice shows. Only sent on a fleet whose broker is Redis."""
    import redis

    entry = "%s %s %.3f" % (self.request.id, socket.gethostname(), time.time())
    redis.Redis.from_url(self.app.conf.broker_url).rpush("acc-runs", entry)
    time.sleep(seconds)
    return seconds
