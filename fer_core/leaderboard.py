"""Leaderboard lines from meta.json alone: no model, no tensor, no torch import (the app's first page)."""

from __future__ import annotations


def leaderboard_row(meta: dict) -> dict:
    """One leaderboard line from a checkpoint's meta.json."""
    m = meta.get("test_metrics", {})
    eff = meta.get("efficiency", {})
    per_class = m.get("per_class_accuracy", {})
    return {
        "id": meta.get("id"),
        "architecture": meta["model"],
        "test accuracy": m.get("accuracy"),
        "macro F1": m.get("macro_f1"),
        "disgust recall": per_class.get("disgust"),
        "parameters (M)": meta.get("parameters", 0) / 1e6,
        "MMACs": eff.get("macs", 0) / 1e6 if eff.get("macs") else None,
        "CPU latency (ms)": eff.get("latency_ms_b1"),
        "training time (min)": meta.get("train_time_s", 0) / 60,
        "epochs": meta.get("epochs_run"),
        "labels": meta.get("data", {}).get("label_source", "?"),
        "dataset": f"{meta.get('data', {}).get('source', '?')} ({meta.get('data', {}).get('label_source', '?')})",
        "device": meta.get("device"),
        "date": (meta.get("created_at") or "")[:10],
        "card": meta.get("card", ""),
    }
