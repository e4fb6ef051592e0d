#!/usr/bin/env python3
"""The queue of Molecule scenarios that `make test`'s lanes take from (Makefile: test-queue).
A lane that comes free takes the next scenario, so the lanes end close together whatever each
one had to do first, on a fresh machine (image builds) as with the images present.

  scripts/scenario_queue.py fill SCENARIO...   the queue, in the order given
  scripts/scenario_queue.py take               prints the next scenario and removes it;
                                               exits 1 when the queue is empty
  scripts/scenario_queue.py clear              empties it: a lane whose scenario failed stops
                                               the others after the scenario each one runs

The queue is one line a scenario in ACC_SCENARIO_QUEUE (default .cache/scenario-queue);
every change to it holds a lock, so two lanes never take the same scenario."""
import fcntl
import os
import sys

DEFAULT_QUEUE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".cache", "scenario-queue")


def change(path, edit):
    """Runs edit(scenarios) -> (scenarios to keep, answer) under the queue's lock."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path + ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            with open(path, encoding="utf-8") as queue:
                scenarios = queue.read().split()
        except FileNotFoundError:
            scenarios = []
        kept, answer = edit(scenarios)
        with open(path, "w", encoding="utf-8") as queue:
            queue.write("".join(name + "\n" for name in kept))
        return answer


def main(argv, path):
    command, names = (argv[0], argv[1:]) if argv else (None, [])
    if command == "fill":
        change(path, lambda scenarios: (names, None))
        return 0
    if command == "take" and not names:
        taken = change(path, lambda scenarios: (scenarios[1:], scenarios[0] if scenarios else None))
        if taken is None:
            return 1
        print(taken)
        return 0
    if command == "clear" and not names:
        change(path, lambda scenarios: ([], None))
        return 0
    sys.exit(__doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], os.environ.get("ACC_SCENARIO_QUEUE") or DEFAULT_QUEUE))
