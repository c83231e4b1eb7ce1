"""Stores: adapters that yield immutable Snapshots (``yamldir``: a directory of YAML/JSON files)."""
