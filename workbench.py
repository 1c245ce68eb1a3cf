"""FER workbench page script, served by app.py: navigation, the pages and the sidebar training panel."""

from __future__ import annotations

import streamlit as st

from ui import checkpoints, glossary, page, training_panel

st.set_page_config(page_title="FER workbench", page_icon="🙂", layout="wide")

pages = [
    st.Page("app_pages/overview.py", title="Overview", icon=":material/leaderboard:", default=True),
    st.Page("app_pages/predict.py", title="Predict", icon=":material/photo_camera:"),
    st.Page("app_pages/explain.py", title="Explain", icon=":material/visibility:"),
    st.Page("app_pages/evaluate.py", title="Evaluate", icon=":material/analytics:"),
    st.Page("app_pages/failures.py", title="Failures", icon=":material/report:"),
    st.Page("app_pages/studies.py", title="Studies", icon=":material/science:"),
]
navigation = st.navigation(pages)
training_panel.status_line()  # a running training job, above every page
if trials := checkpoints.study_trials():  # before the page: the page's pickers read it
    st.sidebar.toggle(
        f"Show study trials ({len(trials)})",
        key=checkpoints.SHOW_TRIALS,
        help="Study trials (mostly short runs) stay out of the leaderboard, Predict, Explain, Evaluate and Failures "
        "unless shown; the Studies page always shows them. Hide or delete a whole study's checkpoints there.",
    )
try:
    navigation.run()
except page.PageEnd:  # a page that said all it had to say (pages end with page.end_page, never st.stop)
    pass
finally:  # also after an error in a page: the sidebar must always offer training
    # After the page: measured sooner for both the Overview's table and the form than drawing it first
    # (bench/RESULTS.md). The panel imports no torch, so it follows within milliseconds of the page.
    glossary.render()
    training_panel.render()
page.run_deferred()  # after everything is drawn; not after an error
