"""Python's cyclic garbage collector held off while a bulk read builds long-lived objects.

A first audit build creates hundreds of thousands of objects (YAML nodes, policy objects,
commit facts, events) that all outlive it, and almost none of them in reference cycles. Each
automatic collection walks the young objects and, every so often, everything alive: on the
10,000-commit bench that was a fifth of the build's time and freed nothing (`bench/audit.py`).
Reference counting still frees whatever is dropped; cycles wait for the next full collection
after the bulk read: when the pause ends, everything the read built goes straight to the oldest
generation instead of being scanned by the young collections on its way there.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_holders = 0  # bulk reads in progress, across threads
_was_enabled = False  # whether the collector ran before the first of them started
_frozen = False  # objects were frozen through `freeze` and not unfrozen since


@contextmanager
def paused() -> Iterator[None]:
    """No automatic collection inside the block (nested and concurrent blocks are fine).

    The collector is enabled again when the last block in progress ends, only if it was enabled
    when the first one started: a caller that disabled it keeps it disabled.
    """
    global _holders, _was_enabled  # noqa: PLW0603 - the collector itself is process-wide state
    with _lock:
        if _holders == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _holders += 1
    try:
        yield
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0 and _was_enabled:
                _to_oldest_generation()
                gc.enable()


def _to_oldest_generation() -> None:
    """Hand what the bulk read built to the oldest generation, unscanned.

    Left in the youngest, it would all be scanned by the first collection after the pause
    (about 0.1 s of CPU after a first audit build of the 10,000-commit bench, for ~160,000
    objects that are nearly all alive) and again on its way to the oldest generation. `freeze`
    then `unfreeze` moves every tracked object there in constant time (two list splices);
    nothing is exempted from collection: garbage cycles among them, if any, are freed by the
    next full collection, as for any long-lived object. Not when objects are frozen already
    (by `freeze`, or by a process that froze them before forking): `unfreeze` would thaw those
    too. `gc.get_freeze_count` counts the frozen objects one by one (35 ms for the planner's
    kept state at 100,000 devices, every pass): what this module froze it knows without it.
    """
    if _frozen or gc.get_freeze_count():
        return
    gc.freeze()
    gc.unfreeze()


def freeze() -> None:
    """`gc.freeze()`: every object tracked now is left out of later collections (freed by
    reference counting still) until `unfreeze`. What the service keeps for long (its imports,
    the planner's state of every device) is frozen through here, so pauses know it is."""
    global _frozen  # noqa: PLW0603 - the collector itself is process-wide state
    with _lock:
        gc.freeze()
        _frozen = True


def unfreeze() -> None:
    """`gc.unfreeze()`: the frozen objects go back to the oldest generation, collected again."""
    global _frozen  # noqa: PLW0603 - the collector itself is process-wide state
    with _lock:
        gc.unfreeze()
        _frozen = False
