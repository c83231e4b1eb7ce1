"""nslab: network-namespace labs of bgpd, BIRD and FRR nodes, built from a topology file."""

from .bgpd_node import BgpdNode
from .bird import Bird
from .etcd import EtcdNode
from .frr import Frr
from .lab import Lab, attach, cleanup_stale, running_labs
from .node import ESTABLISHED, Node, Speaker
from .topology import Topology, TopologyError, load
from .wait import WaitTimeout, holds_for, wait_until

__all__ = [
    "ESTABLISHED", "BgpdNode", "Bird", "EtcdNode", "Frr", "Lab", "Node", "Speaker", "Topology",
    "TopologyError", "WaitTimeout", "attach", "cleanup_stale", "holds_for", "load", "running_labs",
    "wait_until",
]
