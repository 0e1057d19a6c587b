"""Property-based conformance suite: point it at any implementation through an adapter.

``from conformance import check`` is the one-call entry point (conformance/one_call.py):
``check(my_attention, "attention")`` returns a report of the algorithm's properties.
"""

from typing import Any


def __getattr__(name: str) -> Any:
    # Lazy: importing conformance (e.g. for the pytest plugin) stays cheap.
    if name in ("check", "Report", "ConformanceFailure"):
        from conformance import one_call

        return getattr(one_call, name)
    raise AttributeError(f"module 'conformance' has no attribute {name!r}")
