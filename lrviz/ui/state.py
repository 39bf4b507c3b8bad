"""Session state and shared resources for the pages.

Widget values live under a prefix (``lab.`` for the Schedules page) and are kept when
a person visits another page and comes back: Streamlit drops the state of widgets that
were not drawn in a run, so ``keep_widget_state`` re-asserts them at the start of every
run. The store and the executor are one per process and per cache folder.
"""

from __future__ import annotations

from typing import Any, Iterable

import streamlit as st

from lrviz import settings

# Prefixes of widget keys whose values should survive a page switch. Buttons never use
# them: Streamlit refuses to set a button's value through session state.
KEPT_PREFIXES: tuple[str, ...] = ("lab.",)


def keep_widget_state(prefixes: Iterable[str] = KEPT_PREFIXES) -> None:
    """Re-assert widget values so switching pages does not reset them."""
    prefixes = tuple(prefixes)
    for key in list(st.session_state.keys()):
        if isinstance(key, str) and key.startswith(prefixes):
            st.session_state[key] = st.session_state[key]


def init(key: str, value: Any) -> None:
    """Set ``key`` once; later runs keep whatever the person or a callback put there."""
    if key not in st.session_state:
        st.session_state[key] = value


@st.cache_resource(show_spinner=False)
def _store_for(path: str):
    from lrviz.store import RunStore

    return RunStore(path)


@st.cache_resource(show_spinner=False)
def _executor_for(path: str, ray: str | None):
    from lrviz.jobs import get_executor

    return get_executor(_store_for(path))  # shares the page's store and its connections


def store():
    """The run store of the current cache folder (``LRVIZ_CACHE_DIR`` may move it)."""
    return _store_for(str(settings.db_path()))


def executor():
    """The executor that runs trainings for this cache folder (local or Ray)."""
    # Keyed on the cache path and Ray address so tests with a temp cache, or a changed
    # setting, never reuse an executor bound to another store.
    return _executor_for(str(settings.db_path()), settings.ray_address())
