"""Compare: pick runs from a table of summaries, overlay or tile their curves, export."""

import streamlit as st

from lrviz.ui import compare

st.title("Compare")
compare.page()
