"""amlproxy: a validating, retrying, least-privilege front for SageMaker and Amazon ML
real-time prediction endpoints."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Proxy", "__version__"]

if TYPE_CHECKING:
    from amlproxy.proxy import Proxy


def __getattr__(name: str) -> Any:
    """``amlproxy.Proxy`` is imported on first use: ``import amlproxy`` stays cheap."""
    if name == "Proxy":
        from amlproxy.proxy import Proxy

        return Proxy
    raise AttributeError(f"module 'amlproxy' has no attribute {name!r}")
