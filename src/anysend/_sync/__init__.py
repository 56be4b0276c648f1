# GENERATED from src/anysend/_async/__init__.py by scripts/unasync.py. Do not edit: edit the source.
"""The async orchestration: the source from which ``anysend._sync`` is generated."""
