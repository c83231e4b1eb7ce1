"""bgpd: a per-node BGP speaker for Calico v3 resources, built on ExaBGP and the Linux kernel."""

__version__ = "0.1.0"
