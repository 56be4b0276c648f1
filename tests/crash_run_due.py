"""An application process running due steps with ``client.run_due()``, for ``test_crash.py``.

``python -m tests.crash_run_due`` builds the client of ``tests/worker_target.py`` (the store
and adapter come from the same environment variables), takes back the steps worker ``w1``
held when it died, as ``anysend worker --id w1`` does, and calls ``client.run_due()`` (which
claims and runs steps in batches) until nothing is due.
"""

from __future__ import annotations

from tests.worker_target import make_client


def main() -> None:
    """Run every due step in batches, as worker ``w1``."""
    with make_client() as client:
        store = client.store
        assert store is not None
        engine = client._engine()
        engine.worker = "w1"
        store.release_claims("w1")
        while client.run_due():
            pass


if __name__ == "__main__":
    main()
