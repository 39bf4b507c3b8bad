"""Schedules (home): design learning-rate schedules, see their curves, launch training."""

import streamlit as st

from lrviz.ui import lab, train
from lrviz.ui.router import ensure_router

ensure_router()  # first, before anything draws: run under app.py's router

st.title("Learning-rate schedules")
st.caption("Pick schedules, set their parameters and compare the learning rate every "
           "optimizer step applies. Everything redraws as you type.")

chosen = lab.schedule_picker()
settings = lab.run_settings()
chart = st.container()

panels = st.columns(3)
choices = []
for i, name in enumerate(chosen):
    with panels[i % 3]:
        choices.append(lab.schedule_panel(name, settings))

with chart:
    lab.curve_chart(choices)

st.subheader("Formulas and Keras code")
lab.formulas(choices, settings)

st.subheader("Train on Fashion-MNIST")
train.train_section(train.build_configs(choices, settings),
                    skipped=sum(not c.trainable for c in choices))

st.subheader("The article's lesson: Keras's old `decay=` counts batches")
lab.legacy_decay_lesson()
