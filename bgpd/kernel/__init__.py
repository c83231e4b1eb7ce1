"""Kernel routes: template-packed netlink messages (codec, pure) and the FIB they program (fib)."""

from bgpd.kernel.codec import DEFAULT_METRIC, DEFAULT_PROTOCOL, DEFAULT_TABLE, FibChange, Route

__all__ = ["DEFAULT_METRIC", "DEFAULT_PROTOCOL", "DEFAULT_TABLE", "FibChange", "Route"]
