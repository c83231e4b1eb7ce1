"""Fast UPDATE paths through ExaBGP, in both directions: bgpd's patches to the ExaBGP it runs.

Runs inside the ExaBGP child (PyPy 3.9 or CPython), imported before ExaBGP's main, and imports nothing
but ExaBGP and the standard library. Each patch keeps what ExaBGP puts on the wire and on the API;
what it removes is work ExaBGP does per route that bgpd's use of it makes needless:

- `received`: ExaBGP 5.0.15 decodes every received UPDATE into an NLRI object per prefix and encodes
  each as JSON, 4-6 us a route on PyPy (more than BIRD's whole path from wire to kernel), and it cannot
  be switched off while an API process wants UPDATEs (raw `packets` are sent *and* decoded). bgpd runs
  ExaBGP with adj-rib-in false, so the JSON line is the only reader of those routes: for a plain IPv4
  unicast UPDATE, `Update.unpack_message` checks the NLRI's framing, decodes the path attributes once
  (with ExaBGP's own code and its RFC 7606 handling) and keeps the NLRI as bytes, which the JSON
  encoder writes as prefix strings. The line is byte for byte ExaBGP's own
  (tests/unit/test_speaker_fastupdate.py compares both over generated UPDATEs). Anything else
  (MP_REACH/MP_UNREACH, End-of-RIB, ADD-PATH, a session that keeps an Adj-RIB-In, malformed NLRI,
  treat-as-withdraw or discarded attributes, no NEXT_HOP) takes ExaBGP's own path, which also sends
  the NOTIFICATIONs malformed input calls for.
- `shared` and `unhurried`: routes bgpd announces (a reflector's to its clients) were copied once per
  peer and fed to the peers 50 per reactor pass with a sleep between passes.

The patches apply only to the ExaBGP version they were verified against (VERIFIED); with another one,
`install` says why and ExaBGP runs unchanged.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

VERIFIED = "5.0.15"
_PAD = b"\0\0\0\0"
ASYNC_STEPS = 1000  # API command steps (routes) per reactor pass; ExaBGP's own is 50
_DECIMAL = [str(number) for number in range(256)]  # concatenation beats %-formatting 4x on PyPy


def whole(nlri: bytes) -> bool:
    """True when ``nlri`` is a run of complete IPv4 prefixes (length octet <= 32, then its octets)."""
    at, end = 0, len(nlri)
    while at < end:
        bits = nlri[at]
        if bits > 32:
            return False
        at += 1 + ((bits + 7) >> 3)
    return at == end


def mp_free(attributes: bytes) -> bool:
    """True when the packed path ``attributes`` are framed whole and carry no MP_REACH_NLRI (14) or
    MP_UNREACH_NLRI (15). Read before ExaBGP parses them: an UPDATE with MP attributes goes to
    ExaBGP's own path, and parsing them here first would decode its NLRI twice."""
    at, end = 0, len(attributes)
    while at < end:
        if end - at < 3:
            return False
        flags, code = attributes[at], attributes[at + 1]
        if code in (14, 15):
            return False
        if flags & 0x10:  # extended length: two octets
            if end - at < 4:
                return False
            at += 4 + int.from_bytes(attributes[at + 2:at + 4], "big")
        else:
            at += 3 + attributes[at + 2]
    return at == end


def prefixes(nlri: bytes, compact: bool) -> str:
    """The JSON list items ExaBGP writes for these (whole) IPv4 NLRI: `"a.b.c.d/len"` each when
    compact, else `{ "nlri": "a.b.c.d/len" }`; host bits are kept, as ExaBGP keeps them."""
    head, tail = ('"', '"') if compact else ('{ "nlri": "', '" }')
    items = []
    at, end = 0, len(nlri)
    while at < end:
        bits = nlri[at]
        size = (bits + 7) >> 3
        octets = nlri[at + 1:at + 1 + size] + _PAD[size:]
        items.append(head + _DECIMAL[octets[0]] + "." + _DECIMAL[octets[1]] + "." + _DECIMAL[octets[2]]
                     + "." + _DECIMAL[octets[3]] + "/" + _DECIMAL[bits] + tail)
        at += 1 + size
    return ", ".join(items)


def install() -> str | None:
    """Patch ExaBGP; None when done, else why it was not."""
    from exabgp.version import version
    if version != VERIFIED:
        return f"ExaBGP {version} is not {VERIFIED}, the version the fast UPDATE paths are verified against"
    from exabgp.bgp.message.update import Update
    from exabgp.bgp.neighbor import Neighbor
    from exabgp.reactor.api.response.json import JSON
    from exabgp.reactor.asynchronous import ASYNC
    from exabgp.reactor.loop import Reactor

    unpack_message, update_json = received(Update.unpack_message.__func__, JSON._update)
    Update.unpack_message = classmethod(unpack_message)
    JSON._update = update_json
    Neighbor.remove_self = shared(Neighbor.remove_self)
    unhurried(ASYNC, Reactor)
    return None


def shared(exabgp_remove_self: Callable[..., Any]) -> Callable[..., Any]:
    """`Neighbor.remove_self` that copies a route only when it has something to change in it.

    ExaBGP deep-copies every route it injects, once per peer the API command names, "as remove_self
    may well have side effects": it rewrites next-hop `self`. Copies of a route whose next hop is an
    address are identical, and ExaBGP 5.0.15 never mutates an injected route afterwards
    (`OutgoingRIB.del_from_rib` copies before it marks a withdrawal; only watchdogs, which bgpd does not
    use, flip a stored route's action), so the peers of one command can share it. For a reflector
    this was 69% of ExaBGP's CPU and a 2-3 KB copy per route per client.
    """
    def remove_self(self, change):  # type: ignore[no-untyped-def]
        return exabgp_remove_self(self, change) if change.nlri.nexthop.SELF else change
    return remove_self


def unhurried(scheduler: Any, reactor: Any) -> None:
    """Let ExaBGP's reactor work through queued API commands without pausing between them.

    Each API command runs as a generator on ExaBGP's scheduler (`ASYNC`), one route per step, and the
    reactor gave it 50 steps per pass, ran them in a new asyncio event loop every pass, and then slept
    its idle wait (5 ms at `exabgp.reactor.speed 0.5`) even with commands still queued. A reflector
    announcing 10k routes to 10 clients spent most of its time in those pauses (3.4 s against 1.05 s
    with all three changed, netns-lab/bench/reflect). Now: up to ASYNC_STEPS routes per pass (~20 ms
    of work for 10 clients, far below any hold timer), no event loop when only generators are queued
    (ExaBGP 5.0.15 schedules nothing else: it has no `async def` beyond the scheduler itself, so the
    scheduler's coroutine ends at its first step), and no sleep while work is queued.
    """
    scheduler.LIMIT = ASYNC_STEPS
    exabgp_run = scheduler.run

    def run(self):  # type: ignore[no-untyped-def]
        if any(self._is_coroutine(callback) for _, callback in self._async):
            return exabgp_run(self)
        steps = self._run_async()
        try:
            steps.send(None)
        except StopIteration as done:
            return done.value
        steps.close()
        raise RuntimeError("ExaBGP's scheduler awaited with only generators queued")

    exabgp_wait_for_io = reactor._wait_for_io

    def wait_for_io(self, sleeptime):  # type: ignore[no-untyped-def]
        return exabgp_wait_for_io(self, sleeptime if self.asynchronous.ready() else 0)

    scheduler.run = run
    reactor._wait_for_io = wait_for_io


def received(exabgp_unpack: Callable[..., Any], exabgp_update_json: Callable[..., Any],
            ) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """The replacements for `Update.unpack_message` (as a plain function of the class) and
    `JSON._update`, falling back to ExaBGP's own ``exabgp_unpack`` and ``exabgp_update_json``.
    Built without installing them, so a test can run both paths side by side."""
    from exabgp.bgp.message.direction import Direction
    from exabgp.bgp.message.update import Update
    from exabgp.bgp.message.update.attribute import Attribute, Attributes
    from exabgp.protocol.family import AFI, SAFI

    class IPv4Update(Update):  # type: ignore[misc]
        """An UPDATE whose IPv4 unicast NLRI stay as the bytes they came in. ``nlris`` is empty:
        with adj-rib-in false nothing in ExaBGP keeps them, and the JSON encoder reads the bytes."""

        def __init__(self, withdrawn: bytes, announced: bytes, attributes: Attributes) -> None:
            Update.__init__(self, [], attributes)
            self.withdrawn = withdrawn
            self.announced = announced

    # ExaBGP's own path takes an UPDATE carrying any of these (RFC 7606's verdicts on its attributes).
    unusual = (Attribute.CODE.INTERNAL_TREAT_AS_WITHDRAW, Attribute.CODE.INTERNAL_DISCARD)

    def unpack_message(cls, data, direction, negotiated):  # type: ignore[no-untyped-def]
        if (direction != Direction.IN or negotiated.neighbor["adj-rib-in"]
                or negotiated.addpath.receive(AFI.ipv4, SAFI.unicast)):
            return exabgp_unpack(cls, data, direction, negotiated)
        withdrawn, packed_attributes, announced = Update.split(data)  # its Notify for bad lengths
        if (not (withdrawn or announced) or not whole(withdrawn) or not whole(announced)
                or not mp_free(packed_attributes)):
            return exabgp_unpack(cls, data, direction, negotiated)
        attributes = Attributes.unpack(packed_attributes, direction, negotiated)
        if (announced and Attribute.CODE.NEXT_HOP not in attributes) or any(
                code in attributes for code in unusual):
            return exabgp_unpack(cls, data, direction, negotiated)
        return IPv4Update(withdrawn, announced, attributes)

    def update_json(self, update):  # type: ignore[no-untyped-def]
        if not isinstance(update, IPv4Update):
            return exabgp_update_json(self, update)
        nlri = []
        if update.announced:
            nexthop = update.attributes[Attribute.CODE.NEXT_HOP]
            nlri.append(f'"announce": {{ "ipv4 unicast": {{ "{nexthop}": [ '
                        f'{prefixes(update.announced, self.compact)} ] }} }}')
        if update.withdrawn:
            nlri.append(f'"withdraw": {{ "ipv4 unicast": [ {prefixes(update.withdrawn, self.compact)} ] }}')
        content = ", ".join(nlri)
        if update.attributes:
            content = f'"attribute": {{ {update.attributes.json()} }}, {content}'
        return {"message": self._json(f'{{ "update": {{ {content} }} }}')}

    return unpack_message, update_json


def main() -> None:
    """The child's preamble: install, and say on stderr (bgpd's log) when ExaBGP runs unchanged."""
    problem = install()
    if problem is not None:
        print(f"bgpd: fast UPDATE paths off: {problem}", file=sys.stderr, flush=True)
