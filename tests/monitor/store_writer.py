"""The writer process of the SIGKILL test: append transitions without end, print what is acknowledged.

Usage: python -m tests.monitor.store_writer DATA_DIR RUN
Prints "OPEN" once the store is open, then for each batch "SENT <i>" once transitions up to i are
queued and "ACK <i>" once they are committed (flush returned True). Transition i of run R is entity
"target:crash/R<R>/T<i % 50>", new "s<i>", reasons ("run=R", "i=i"), so the test can tell exactly
what is there and in which order.
"""

from __future__ import annotations

import sys
import time

from monitor.store.events import EventStore, Transition


def main(argv: list[str]) -> int:
    data_dir, run = argv[0], int(argv[1])
    store = EventStore(data_dir, batch_seconds=0.01)
    store.open()
    print("OPEN", flush=True)
    i, round_ = 0, 0
    while True:
        n = 1 + (round_ * 7919 + run * 31) % 400  # batches from 1 to 400 rows
        store.append(
            Transition(time.time(), f"target:crash/R{run}/T{k % 50}", None, f"s{k}", (f"run={run}", f"i={k}"),
                       f"cfg-{run}")
            for k in range(i, i + n)
        )
        if round_ % 7 == 0:  # a bigger row now and then, so some commits take longer
            store.append_snapshot(time.time(), {f"S{s:04d}": {"state": "ready", "reasons": [], "since": 1.0}
                                                 for s in range(100)}, f"cfg-{run}")
        i += n
        round_ += 1
        print(f"SENT {i - 1}", flush=True)
        if not store.flush(30):
            print(f"FLUSH FAILED {store.status.error}", flush=True)
            return 1
        print(f"ACK {i - 1}", flush=True)
        time.sleep(0.002)  # keep the store small enough to check after each of many kills


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
