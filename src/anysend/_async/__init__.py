"""The async orchestration: the source from which ``anysend._sync`` is generated."""
