"""Received IPv4 UPDATEs handed from ExaBGP to bgpd without an object per prefix.

Runs inside the ExaBGP child (PyPy 3.9 or CPython), imported before ExaBGP's main, and imports nothing
but ExaBGP and the standard library.

Why: ExaBGP 5.0.15 decodes every received UPDATE into an NLRI object per prefix and encodes each one
as JSON for the API. On PyPy that is 4-6 us a route, more than BIRD's whole path from wire to kernel,
and it cannot be switched off while an API process wants UPDATEs (raw `packets` are sent *and*
decoded). bgpd runs ExaBGP with adj-rib-in false, so the JSON line is the only reader of those routes.

What: for an UPDATE received with IPv4 unicast NLRI and nothing unusual, `Update.unpack_message`
checks the NLRI's framing, decodes the path attributes once (with ExaBGP's own code, which applies its
RFC 7606 handling) and keeps the NLRI as bytes; the JSON encoder writes them as prefix strings
straight from those bytes. The JSON line is byte for byte the one ExaBGP writes
(tests/unit/test_speaker_fastupdate.py compares them over generated UPDATEs), so the contract with
bgpd does not change. Anything else (MP_REACH/MP_UNREACH, End-of-RIB, ADD-PATH, a session that keeps
an Adj-RIB-In, malformed NLRI, treat-as-withdraw or discarded attributes, no NEXT_HOP) takes
ExaBGP's own path, which also sends the NOTIFICATIONs malformed input calls for.

The patch applies only to the ExaBGP version it was verified against (VERIFIED); with another one,
`install` says why and ExaBGP runs unchanged.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

VERIFIED = "5.0.15"
_PAD = b"\0\0\0\0"
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
    """Patch ExaBGP's UPDATE decoding and JSON encoding; None when done, else why it was not."""
    from exabgp.version import version
    if version != VERIFIED:
        return f"ExaBGP {version} is not {VERIFIED}, the version the fast UPDATE path is verified against"
    from exabgp.bgp.message.update import Update
    from exabgp.reactor.api.response.json import JSON

    unpack_message, update_json = patches(Update.unpack_message.__func__, JSON._update)
    Update.unpack_message = classmethod(unpack_message)
    JSON._update = update_json
    return None


def patches(exabgp_unpack: Callable[..., Any], exabgp_update_json: Callable[..., Any],
            ) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """The replacements for `Update.unpack_message` (as a plain function of the class) and
    `JSON._update`, falling back to ExaBGP's own ``exabgp_unpack`` and ``exabgp_update_json``.
    Built without installing them, so a test can run both paths side by side."""
    from exabgp.bgp.message.direction import Direction
    from exabgp.bgp.message.update import Update
    from exabgp.bgp.message.update.attribute import MPRNLRI, MPURNLRI, Attribute, Attributes
    from exabgp.protocol.family import AFI, SAFI

    class IPv4Update(Update):  # type: ignore[misc]
        """An UPDATE whose IPv4 unicast NLRI stay as the bytes they came in. ``nlris`` is empty:
        with adj-rib-in false nothing in ExaBGP keeps them, and the JSON encoder reads the bytes."""

        def __init__(self, withdrawn: bytes, announced: bytes, attributes: Attributes) -> None:
            Update.__init__(self, [], attributes)
            self.withdrawn = withdrawn
            self.announced = announced

    # ExaBGP's own path takes an UPDATE carrying any of these.
    unusual = (MPRNLRI.ID, MPURNLRI.ID, Attribute.CODE.INTERNAL_TREAT_AS_WITHDRAW,
               Attribute.CODE.INTERNAL_DISCARD)

    def unpack_message(cls, data, direction, negotiated):  # type: ignore[no-untyped-def]
        if (direction != Direction.IN or negotiated.neighbor["adj-rib-in"]
                or negotiated.addpath.receive(AFI.ipv4, SAFI.unicast)):
            return exabgp_unpack(cls, data, direction, negotiated)
        withdrawn, packed_attributes, announced = Update.split(data)  # its Notify for bad lengths
        if not (withdrawn or announced) or not whole(withdrawn) or not whole(announced):
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
        print(f"bgpd: fast UPDATE path off: {problem}", file=sys.stderr, flush=True)
