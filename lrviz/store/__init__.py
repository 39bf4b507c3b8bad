"""The run cache: runs, their configs, statuses and metrics in one SQLite file.

``RunStore`` is the only way in; ``StoreSink`` streams a training run into it. Safe for
several worker processes and Streamlit sessions at once (WAL, short transactions).
"""

from lrviz.store.runs import (
    HISTORY_COLUMNS,
    METRICS,
    TERMINAL,
    RunInfo,
    RunStore,
    WorkerInfo,
    config_hash_of,
    new_run_id,
)
from lrviz.store.schema import KINDS, STATUSES, StoreError
from lrviz.store.schema import LATEST as SCHEMA_VERSION
from lrviz.store.sink import StoreSink

__all__ = [
    "HISTORY_COLUMNS", "KINDS", "METRICS", "SCHEMA_VERSION", "STATUSES", "TERMINAL",
    "RunInfo", "RunStore", "StoreError", "StoreSink", "WorkerInfo", "config_hash_of",
    "new_run_id",
]
