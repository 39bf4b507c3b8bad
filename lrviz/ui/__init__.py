"""Streamlit helpers for the pages: widgets built from ``Param`` specs, session state,
the Train flow and run cards.

This package and ``pages/`` are the only code that imports Streamlit. Every helper
takes its data from the core (``lrviz.schedules``, ``lrviz.store``, ``lrviz.jobs``,
``lrviz.charts``) and only draws; nothing here trains, queries SQL or does maths.
"""
