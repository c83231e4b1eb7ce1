"""The Calico v3 resource model: frozen values, parsed and validated from plain dicts (no I/O)."""
