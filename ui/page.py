"""Page plumbing: ending a page early with the sidebar still drawn, work deferred until everything is drawn,
and the stop for a store without usable checkpoints."""

from __future__ import annotations

import contextlib
import gc
import sys
from collections.abc import Callable
from typing import NoReturn

import streamlit as st

from fer_core.store import CheckpointInfo

from .checkpoints import good_checkpoints


class PageEnd(Exception):
    """Raised by end_page; workbench.py catches it."""


def end_page() -> NoReturn:
    """End the page script here and still draw the sidebar: after st.stop() every later st call stops again, so
    a page that stopped that way lost the glossary and the training panel drawn after it."""
    raise PageEnd


DEFERRED_KEY = "after_drawing"


def after_drawing(job: Callable[[], object]) -> None:
    """Run `job` once the page and the sidebar are drawn (workbench.py calls run_deferred): slow work that
    prepares the next interaction, such as loading Predict's models before the first photo."""
    st.session_state.setdefault(DEFERRED_KEY, []).append(job)


def run_deferred() -> None:
    for job in st.session_state.pop(DEFERRED_KEY, []):
        with contextlib.suppress(ValueError, OSError, RuntimeError):  # preparation only: the real call reports it
            job()
    if gc.get_freeze_count() == 0 and "torch" in sys.modules:
        _freeze_long_lived()


def _freeze_long_lived() -> None:
    """Once per process, at the end of the first run that loaded torch (and on Predict its models): move every
    live object into the collector's permanent generation. Streamlit runs a full collection after each script
    run, and Python one now and then; with torch, Streamlit and the models loaded it walked ~490k objects in
    ~300 ms on the script thread, which the next interaction waited for; after the freeze 20-90 ms
    (bench/RESULTS.md, "The app"). Collected first, so no garbage is frozen; objects made later are collected
    as before."""
    gc.collect()
    gc.freeze()


def require_checkpoints() -> list[CheckpointInfo]:
    """The usable checkpoints; stops the page with a hint when there are none."""
    good = good_checkpoints()
    if not good:
        st.info("No trained models yet: train one from the sidebar first.")
        end_page()
    return good
