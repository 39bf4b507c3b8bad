"""Keep every page under app.py's router, even when a page is the first one opened.

Streamlit treats a folder named ``pages/`` beside the entry script as its old multipage
layout until the entry script has called ``st.navigation`` once in this server process.
A person who opens ``/runs`` first after a server (re)start would get that page run on
its own: file names in the menu, no wide layout, no kept settings. ``ensure_router``
switches the old layout off and runs ``app.py`` in its place, in the same script run (a
rerun would drop a button click that started this run), so the router serves the URL.
"""

from __future__ import annotations

import runpy
from pathlib import Path

import streamlit as st

APP = Path(__file__).resolve().parents[2] / "app.py"


def ensure_router() -> None:
    """Call first in every page file."""
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        runpy.run_path(str(APP), run_name="__main__")  # routes back to this page, once
        st.stop()
