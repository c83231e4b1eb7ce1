"""KernelFibPort: apply() never waits for the kernel, batches coalesce, and order is kept."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from bgpd.adapters import KernelFibPort, Outbox
from bgpd.kernel.codec import FibChange as KernelChange
from bgpd.kernel.codec import Route
from bgpd.kernel.fib import ApplyResult, KernelFib
from bgpd.rib import FibChange


class FakeFib:
    """Records what reaches the kernel; the first apply() blocks until released."""

    def __init__(self) -> None:
        self.calls: list[object] = []
        self.release = threading.Event()
        self.fail_next = False

    def apply(self, changes: list[FibChange]) -> ApplyResult:
        self.release.wait(10)
        if self.fail_next:
            self.fail_next = False
            raise OSError("netlink socket gone")
        prefixes = [p for c in changes for p in c.prefixes]
        self.calls.append(prefixes)
        return ApplyResult(len(prefixes), {p: "EINVAL: bad" for p in prefixes if p.startswith("9.")})

    metric = 44
    found: list[Route] = []  # what the "kernel" holds of ours
    by_prefix = KernelFib.by_prefix  # pure: the real one

    def routes(self) -> list[Route]:
        self.calls.append("dump")
        return self.found

    def close(self) -> None:
        pass


@pytest.fixture
def port() -> Iterator[tuple[KernelFibPort, FakeFib]]:
    port = KernelFibPort(254, 44)
    port._fib.close()
    fake = FakeFib()
    port._fib = fake  # type: ignore[assignment]
    yield port, fake
    fake.release.set()
    port.close()


def change(prefix: str) -> FibChange:
    return FibChange((prefix,), ("10.0.0.1",))


def test_the_ribs_fib_change_is_what_the_kernel_reads() -> None:
    """The port hands the RIB's objects to the kernel as they are: one definition."""
    assert KernelChange is FibChange


def test_apply_returns_at_once_and_later_changes_coalesce_in_order(
        port: tuple[KernelFibPort, FakeFib]) -> None:
    fib_port, fake = port

    async def main() -> None:
        await fib_port.apply([change("1.0.0.0/24")])  # the worker takes it and blocks in the "kernel"
        await asyncio.sleep(0.05)
        await fib_port.apply([change("2.0.0.0/24")])  # returns while the first batch is in the kernel
        await fib_port.apply([change("3.0.0.0/24"), change("9.0.0.0/24")])
        await fib_port.apply([])
        assert fake.calls == []
        fake.release.set()
        await fib_port.dump()  # queued behind the flushes: sees every change applied before it
        await asyncio.sleep(0)  # the done-callbacks run on the loop
        assert fake.calls == [["1.0.0.0/24"], ["2.0.0.0/24", "3.0.0.0/24", "9.0.0.0/24"], "dump"]
        assert fib_port.errors == 1

    asyncio.run(main())


def test_a_failed_batch_is_counted_and_the_next_one_still_goes(port: tuple[KernelFibPort, FakeFib]) -> None:
    fib_port, fake = port
    fake.release.set()
    fake.fail_next = True

    async def main() -> None:
        await fib_port.apply([change("1.0.0.0/24")])
        await fib_port.dump()
        await fib_port.apply([change("2.0.0.0/24")])
        await fib_port.dump()
        await asyncio.sleep(0)
        assert fake.calls == ["dump", ["2.0.0.0/24"], "dump"]
        assert fib_port.errors == 1

    asyncio.run(main())


def test_a_backlog_past_the_limit_waits_for_the_kernel(port: tuple[KernelFibPort, FakeFib],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    fib_port, fake = port
    monkeypatch.setattr(KernelFibPort, "MAX_PENDING", 2)

    async def main() -> None:
        await fib_port.apply([change("1.0.0.0/24")])  # taken by the worker, blocked in the "kernel"
        await asyncio.sleep(0.05)
        await fib_port.apply([change("2.0.0.0/24")])  # backlog 1: returns
        waiting = asyncio.ensure_future(fib_port.apply([change("3.0.0.0/24")]))  # backlog 2: waits
        await asyncio.sleep(0.05)
        assert not waiting.done()
        fake.release.set()
        await asyncio.wait_for(waiting, 5)
        assert fake.calls == [["1.0.0.0/24"], ["2.0.0.0/24", "3.0.0.0/24"]]

    asyncio.run(main())


@pytest.mark.parametrize(("found", "adopted", "leftovers"), [
    ([], {}, False),
    ([Route("10.1.0.0/24", ("10.0.0.1",))], {"10.1.0.0/24": ("10.0.0.1",)}, False),
    ([Route("10.1.0.0/24", ("10.0.0.1",)), Route("10.244.0.0/26", (), "blackhole")],
     {"10.1.0.0/24": ("10.0.0.1",)}, True),
    ([Route("10.1.0.0/24", ("10.0.0.9",), metric=7), Route("10.1.0.0/24", ("10.0.0.1",)),
      Route("10.2.0.0/24", ("10.0.0.9",), metric=7)],
     {"10.1.0.0/24": ("10.0.0.1",), "10.2.0.0/24": ("10.0.0.9",)}, True),
])
def test_dump_adopts_unicast_routes_ours_first_and_says_what_it_left(
        port: tuple[KernelFibPort, FakeFib], found: list[Route], adopted: dict[str, tuple[str, ...]],
        leftovers: bool) -> None:
    fib_port, fake = port
    fake.release.set()
    fake.found = found
    assert asyncio.run(fib_port.dump()) == adopted
    assert fib_port.leftovers is leftovers


def test_outbox_sends_in_order_without_holding_the_sender_and_bounds_its_backlog(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Outbox, "LIMIT", 3)

    async def main() -> None:
        sent: list[list[str]] = []
        release = asyncio.Event()

        async def send(batch: list[str]) -> None:
            await release.wait()  # ExaBGP still busy with the previous commands
            if batch == ["fail"]:
                raise ConnectionError("ExaBGP went away")
            sent.append(batch)

        outbox = Outbox(send)
        await outbox.put(["a1", "a2"])  # returns at once: nothing acknowledged yet
        await outbox.put(["fail"])
        await outbox.put([])
        blocked = asyncio.ensure_future(outbox.put(["b1"]))  # 4 > LIMIT unsent: waits
        await asyncio.sleep(0.05)
        assert sent == [] and not blocked.done()
        release.set()
        await asyncio.wait_for(blocked, 5)
        await asyncio.wait_for(outbox.flush(), 5)
        assert sent == [["a1", "a2"], ["b1"]]  # in order; a failed batch is logged and skipped
        outbox.close()

    asyncio.run(main())
