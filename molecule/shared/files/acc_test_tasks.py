"""Tasks that run for a while, for the graceful-restart tests and benchmarks/rolling_load.py.
The test fleet's workers load them through Celery's `include` setting."""
import socket
import time

from celery import shared_task


@shared_task(name="acc.sleep")
def sleep(seconds):
    time.sleep(seconds)
    return seconds


@shared_task(name="acc.sleep_count", bind=True)
def sleep_count(self, seconds):
    """acc.sleep that first notes "<task id> <host> <start time>" in the Redis list acc-runs on
    the broker, so a task that runs twice shows. Only sent on a fleet whose broker is Redis."""
    import redis

    entry = "%s %s %.3f" % (self.request.id, socket.gethostname(), time.time())
    redis.Redis.from_url(self.app.conf.broker_url).rpush("acc-runs", entry)
    time.sleep(seconds)
    return seconds
