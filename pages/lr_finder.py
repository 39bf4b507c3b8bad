import streamlit as st; st.title("LR finder"); st.info("The LR finder page is being built.")
