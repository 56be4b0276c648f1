"""Integrations with other frameworks, each in its own sub-package (``anysend.contrib.django``).

Nothing here is imported by ``import anysend``; each sub-package needs its framework installed.
"""
