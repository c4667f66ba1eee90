"""Process-wide interpreter settings for the long-running `tradeos up` processes, where a pause of any one thread
is a pause of all of them (they share one GIL).

An operator's halt is acknowledged by the engine's command thread and answered by the API's event loop. Neither
does much work, but each waits whenever the interpreter stops the world. The worst such stop was CPython's full
(generation 2) garbage collection: it walks every container object in the process — at `tradeos up` mostly the
~100k functions, classes and descriptors the imports created, which never die — and it ran about every second
in the engine at full speed (each batch of bars waiting for its commit outlives the young collections), holding
the GIL 50–240 ms each time on a 2-core machine at load ~2 (bench/README.md); once a run in the API process
(116–364 ms). So, once started:

- everything alive is moved out of the collector's sight (`gc.freeze`): it is still freed when its last reference
  goes, it is just never walked again;
- a full collection waits for `FULL_COLLECTION_EVERY` young (generation 1) collections instead of 10. What it walks
  is only what was allocated since start-up and is still alive, so it is short as well as rare; cyclic garbage
  that lived long enough to reach generation 2 is freed later, not never.

Young collections (generations 0 and 1: what was allocated lately, about 1 ms at most) are left as they are.
"""

from __future__ import annotations

import gc
import sys

from fastapi.telemetry import TelemetryConfig

# FastAPI's native OpenTelemetry: with no provider configured it only looks for one, on every request (three
# environment reads, ~1% of a `/portfolio`). TRADEOS exports its own figures (Prometheus `/metrics` on 18003).
NO_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}

FULL_COLLECTION_EVERY = 1000  # young collections between two full ones (CPython's default is 10)
# How long a thread waiting for the GIL lets the holder run (CPython's default is 5 ms). The command thread takes
# the GIL back after each blocking call (reading the command, the engine lock, sending the ack: 3-4 times a
# command) and each time waits up to this for the engine thread, which at `--speed 0` always wants it.
SWITCH_INTERVAL_SECONDS = 0.0002


def settle_heap() -> None:
    """Call once start-up is done (imports made, apps built): what is alive now is frozen, full collections rare."""
    gc.collect()  # garbage made while starting is freed now rather than frozen for good
    gc.freeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_COLLECTION_EVERY)


def hand_over_the_gil_promptly() -> None:
    """The engine thread at `--speed 0` wants the GIL all the time; the command thread must get it at once. A switch
    is forced only while another thread waits for the GIL (the housekeeping thread every 50 ms, the command thread
    per command), so the engine thread is rarely interrupted more than before."""
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
