"""FER workbench: `streamlit run app.py`. Serves workbench.py and imports its UI stack while the browser loads.

Streamlit runs a page script only once a browser has connected, so a cold start used to import pandas and
altair after the page had loaded (a large share of the cold start, bench/RESULTS.md). The lifespan hook
starts those imports as soon as the server is up, in parallel with the browser fetching the frontend.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import streamlit as st

FIRST_PAINT_MODULES = ("pandas", "altair", "ui.page", "ui.own_data_results", "ui.charts", "ui.training_panel")


def _import_first_paint_modules() -> None:
    for name in FIRST_PAINT_MODULES:
        importlib.import_module(name)


@asynccontextmanager
async def warm_imports(_app: st.App) -> AsyncIterator[None]:
    threading.Thread(target=_import_first_paint_modules, name="warm-imports", daemon=True).start()
    yield


app = st.App("workbench.py", lifespan=warm_imports)
