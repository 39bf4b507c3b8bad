import streamlit as st; st.title("Compare"); st.info("The Compare page is being built.")
