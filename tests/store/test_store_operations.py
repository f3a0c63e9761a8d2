"""Day-2 operations in the store on each engine: enrolment-token uses counted atomically, a
retired device leaves planning and comes back on re-enrolment (issue 16 item 4)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from controller.runtime import observe
from controller.store import Store, devices, operations, tokens

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
LOCAL = operations.Operator(actor="local operator test", scope=None)


def enrolment(hostname: str, machine_id: str | None = None) -> devices.Enrolment:
    return devices.Enrolment(
        tenant="acme/retail",
        hostname=hostname,
        os_family="linux",
        os_name="Ubuntu",
        os_version="24.04",
        role="server",
        agent_version="1.0",
        machine_id=machine_id,
    )


def test_concurrent_enrolments_never_pass_the_use_limit(store: Store) -> None:
    """Eight transactions racing for a token with three uses: exactly three get one."""
    with store.write() as conn:
        issued = tokens.create_token(
            conn, kind=tokens.TokenKind.ENROLLMENT, tenant="acme/retail", now=NOW, max_uses=3
        )
    start = threading.Barrier(8)
    results: list[bool] = []
    lock = threading.Lock()

    def take() -> None:
        start.wait(timeout=30)
        with store.write() as conn:
            taken = tokens.use_enrolment_token(conn, issued.id)
        with lock:
            results.append(taken)

    threads = [threading.Thread(target=take) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    with store.read() as conn:
        counted = tokens.token_uses(conn, issued.id)
    assert [False] * 5 + [True] * 3 == sorted(results)
    assert (3, 3) == counted


def test_a_retired_device_leaves_planning_and_returns_on_re_enrolment(store: Store) -> None:
    """Retired: not observed, not listed; re-enrolled from another machine: the same device."""
    with store.write() as conn:
        first = devices.enrol(conn, enrolment("web-01", "m-1"), poll_interval=60, now=NOW)
        assert isinstance(first, devices.Enrolled)
        operations.retire_device(conn, "web-01", who=LOCAL, now=NOW)
    with store.read() as conn:
        planned = observe.observe(conn, now=NOW).devices
        listed = devices.list_devices(conn, scope="acme")
        kept = devices.list_devices(conn, scope="acme", include_retired=True)
    with store.write() as conn:
        again = devices.enrol(
            conn, enrolment("web-01", "m-2"), poll_interval=60, now=NOW + timedelta(days=1)
        )
    with store.read() as conn:
        back = [d.id for d in observe.observe(conn, now=NOW + timedelta(days=1)).devices]
    assert ((), []) == (planned, listed)
    assert [(first.device_id, NOW)] == [(d["id"], d["retired_at"]) for d in kept]
    assert isinstance(again, devices.Enrolled)
    assert (first.device_id, [first.device_id]) == (again.device_id, back)
