"""A task that runs for a while, for the graceful-restart test. The test fleet's workers
load it through Celery's `include` setting."""
import time

from celery import shared_task


@shared_task(name="acc.sleep")
def sleep(seconds):
    time.sleep(seconds)
    return seconds
