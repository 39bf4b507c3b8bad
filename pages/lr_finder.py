"""LR finder: a learning-rate range test whose suggestions go back into a schedule."""

import streamlit as st

from lrviz.ui import lr_finder, state
from lrviz.ui.router import ensure_router

ensure_router()  # first, before anything draws: run under app.py's router

state.keep_widget_state((lr_finder.PREFIX,))  # settings survive a visit to another page

st.title("LR finder")
st.caption("A learning-rate range test (Leslie Smith; fastai's lr_find): the LR rises "
           "step by step on a fresh model while the loss is recorded. Pick an LR where the "
           "smoothed loss still falls steeply, well before it blows up.")

config = lr_finder.settings_form()
run_id = lr_finder.run_controls(config)
if run_id is None:
    st.info("No test with these settings yet: press Run range test.")
else:
    lr_finder.result_section(run_id)
