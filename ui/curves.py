"""Learning curves of several runs, drawn the same way on Evaluate's Runs tab and for a study's trials."""

from __future__ import annotations

from collections.abc import Sequence

import streamlit as st

from fer_core.records import EpochStats
from ui import charts

OVERLAID_RUNS = 3  # up to this many runs share one chart per metric; beyond, colours no longer tell them apart
PANELS_PER_ROW = 3


def learning_curves(histories: dict[str, Sequence[EpochStats]], key: str, stacked_height: int | None = None) -> None:
    """Loss and accuracy overlaid (colour for the run, dash for the split), or a panel per run beyond
    OVERLAID_RUNS, in rows of columns that a phone stacks. `stacked_height`: the two charts one above the other at
    that height (the sidebar, too narrow for two columns)."""
    if stacked_height is not None:
        for metric in ("loss", "acc"):
            st.altair_chart(charts.training_curves(histories, metric).properties(height=stacked_height), width="stretch")
        return
    if len(histories) <= OVERLAID_RUNS:
        loss_col, acc_col = st.columns(2)
        loss_col.altair_chart(charts.training_curves(histories, "loss"), width="stretch")
        acc_col.altair_chart(charts.training_curves(histories, "acc"), width="stretch")
        return
    metric = st.radio("Curves", ["acc", "loss"], horizontal=True, format_func={"acc": "accuracy", "loss": "loss"}.get, key=key)
    panels = charts.training_curve_panels(histories, metric)
    st.caption(":blue[training] · :orange[validation] · panels share their axes")
    for start in range(0, len(panels), PANELS_PER_ROW):
        for column, panel in zip(st.columns(PANELS_PER_ROW), panels[start : start + PANELS_PER_ROW], strict=False):
            column.altair_chart(panel, width="stretch")
