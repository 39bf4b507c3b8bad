"""Background training: executors that run submitted configs outside the Streamlit process.

``get_executor()`` returns the active executor: local worker processes, or (later) a Ray
cluster when ``LRVIZ_RAY_ADDRESS`` is set. ``reconcile(store)`` turns ``running`` runs
whose worker died into ``failed`` (the Runs page calls it on each refresh). Importing this
package imports neither TensorFlow nor Streamlit; workers import TensorFlow themselves.
"""

from __future__ import annotations

from lrviz import settings
from lrviz.jobs.executor import (
    Executor,
    LocalExecutor,
    Submission,
    pid_alive,
    reconcile,
)
from lrviz.store import RunStore

__all__ = ["Executor", "LocalExecutor", "Submission", "get_executor", "pid_alive",
           "reconcile"]


def get_executor(store: RunStore | None = None) -> Executor:
    """The executor for this environment: a ``LocalExecutor`` unless ``LRVIZ_RAY_ADDRESS``
    is set, in which case the Ray executor (``lrviz.jobs.ray_executor.RayExecutor``, issue 9)
    is used, and Ray is imported only then."""
    address = settings.ray_address()
    if address is None:
        return LocalExecutor(store)
    try:
        from lrviz.jobs.ray_executor import RayExecutor
    except ImportError as exc:
        raise RuntimeError(
            f"LRVIZ_RAY_ADDRESS is set ({address!r}) but the Ray executor cannot be loaded "
            f"({exc}). Install the Ray extra (make ray-test) or unset LRVIZ_RAY_ADDRESS."
        ) from exc
    return RayExecutor(address, store=store)
