"""lrviz: the entry point. A router only: every page lives in ``pages/``."""

import streamlit as st

from lrviz.store import StoreError
from lrviz.ui.state import keep_widget_state

st.set_page_config(page_title="lrviz", page_icon=":material/show_chart:", layout="wide")
keep_widget_state()  # the Schedules page keeps its settings while you visit other pages

page = st.navigation([
    st.Page("pages/schedules.py", title="Schedules", icon=":material/show_chart:", default=True),
    st.Page("pages/runs.py", title="Runs", icon=":material/monitoring:"),
    st.Page("pages/compare.py", title="Compare", icon=":material/compare_arrows:"),
    st.Page("pages/lr_finder.py", title="LR finder", icon=":material/search:"),
])
try:
    page.run()
except (StoreError, OSError) as err:  # a read-only cache folder, a full disk: one sentence
    st.error(f"The run cache cannot be used. {err}", icon=":material/error:")
