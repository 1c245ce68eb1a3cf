"""The glossary in the sidebar of every page: the terms the pages use, one line each."""

from __future__ import annotations

import streamlit as st

BEST_WITHIN_NOISE = (
    "★ marks the most accurate model of a table and every model that McNemar's exact test, on the faces both saw, "
    "cannot tell from it (p ≥ 0.05 after Holm's correction over the table's comparisons): a lead within noise is no "
    "lead. 'vs best' gives each model's corrected p against the most accurate one."
)


def standing_columns(interval_help: str = "Bootstrap 95% interval of the accuracy, in points") -> dict:
    """Column settings of the ★, '95% CI' and 'vs best' columns wherever a table ranks models (fixed widths: a table
    drawn first without its marks keeps the widths of its first draw, which cut the verdicts off)."""
    return {
        "best": st.column_config.TextColumn("", help=BEST_WITHIN_NOISE, width=30),
        "95% CI": st.column_config.TextColumn("95% CI", help=interval_help, width=100),
        "vs best": st.column_config.TextColumn("vs best", help=BEST_WITHIN_NOISE, width=220),
    }


def percent_columns(*names: str) -> dict:
    """Column settings that show these columns' shares (0..1) as percentages."""
    return {name: st.column_config.NumberColumn(format="percent") for name in names}


TERMS = {
    "Accuracy": "Share of test faces whose top class is right: FER2013's PrivateTest (3,589 faces); models are "
    "chosen on PublicTest, never on PrivateTest.",
    "Macro F1": "F1 (the harmonic mean of precision and recall) per class, averaged over classes, so a rare class "
    "such as disgust weighs as much as happy.",
    "ECE": "Expected calibration error: the mean gap between a model's confidence and how often it is right, over "
    "confidence bins; 0 means a 70% confident answer is right 70% of the time.",
    "McNemar": "A paired test on the same test faces, from the faces one model gets right and the other wrong; a small "
    "p-value says the difference is unlikely to be chance. Holm corrects it for many comparisons.",
    "★ best within noise": BEST_WITHIN_NOISE,
    "95% interval": "Bootstrap confidence interval: the range of accuracy over test sets resampled with replacement.",
    "MMACs": "Millions of multiply-accumulate operations to classify one face: the model's compute per prediction.",
    "CPU latency": "Milliseconds to classify one face (batch 1) on the CPU of the machine that measured it.",
    "TTA": "Test-time augmentation: probabilities averaged over the face and its mirror image (flip), or over five "
    "crops and their mirrors (tencrop).",
    "Ensemble": "The mean of several models' class probabilities (models with the same class list).",
}


def render() -> None:
    with st.sidebar.expander("Glossary"):
        st.markdown("\n".join(f"- **{term}**: {text}" for term, text in TERMS.items()))
