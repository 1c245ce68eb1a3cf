"""Altair charts and small image helpers shared by the pages (drawing only: numbers come from fer_core)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import altair as alt
import cv2
import numpy as np
import pandas as pd

from fer_core.drawing import DETECTED, FALLBACK, draw_boxes

if TYPE_CHECKING:
    from fer_core.evaluation import ReliabilityBin, RocCurve
    from fer_core.records import EpochStats
    from fer_core.studies.report import PointResult
    from fer_core.studies.spec import Range
    from fer_core.video import ExpressionShare, TimelinePoint


GRID_DATA = "cells"  # the dataset name probability_grid reads its data from


def probability_grid(models: tuple[str, ...], classes: tuple[str, ...]) -> alt.LayerChart:
    """The layout of a face's probability heatmap (rows: models; the top class outlined), without its data:
    a spec's `datasets[GRID_DATA]` holds `probability_cells`. Altair takes ~80 ms to build and validate it, a
    new photo's whole chart budget, so Predict builds it once per models and classes (bench/RESULTS.md).

    Models with other class lists (FER+ adds contempt) simply leave those cells empty.
    """
    slanted = alt.Axis(orient="top", labelAngle=-35, labelAlign="left", labelOverlap=False)  # all eight fit a phone
    base = alt.Chart(alt.NamedData(GRID_DATA)).encode(
        x=alt.X("emotion:N", sort=list(classes), title=None, axis=slanted),
        y=alt.Y("model:N", sort=list(models), title=None, axis=alt.Axis(labelLimit=150, labelOverlap=False)),
    )
    cells = base.mark_rect(stroke="#e4572e").encode(
        color=alt.Color("probability:Q", scale=alt.Scale(domain=[0, 1], scheme="blues"), legend=None),
        strokeWidth=alt.condition("datum.top", alt.value(3), alt.value(0)),
        tooltip=["model:N", "emotion:N", alt.Tooltip("probability:Q", format=".1%")],
    )
    text = base.mark_text(fontSize=10).encode(
        text=alt.Text("probability:Q", format=".0%"),
        color=alt.condition("datum.probability > 0.55", alt.value("white"), alt.value("black")),
    )
    return (cells + text).properties(height=22 * len(models) + 70)  # Streamlit fits the slanted class labels in too


def probability_cells(per_model: dict[str, dict[str, float]]) -> list[dict[str, object]]:
    """The grid's data: one row per model and class, its top class marked."""
    return [
        {"model": model, "emotion": emotion, "probability": p, "top": emotion == max(probs, key=probs.__getitem__)}
        for model, probs in per_model.items()
        for emotion, p in probs.items()
    ]


def confusion_heatmap(matrix: Sequence[Sequence[float]], classes: Sequence[str], normalized: bool) -> alt.LayerChart:
    rows = [{"true": t, "predicted": p, "value": matrix[i][j]} for i, t in enumerate(classes) for j, p in enumerate(classes)]
    df = pd.DataFrame(rows)
    fmt = ".0%" if normalized else "d"
    base = alt.Chart(df).encode(x=alt.X("predicted:N", sort=classes), y=alt.Y("true:N", sort=classes))
    heat = base.mark_rect().encode(
        color=alt.Color("value:Q", scale=alt.Scale(scheme="blues"), legend=None),
        tooltip=["true", "predicted", alt.Tooltip("value:Q", format=fmt)],
    )
    peak = df["value"].max() or 1
    text = base.mark_text(fontSize=11).encode(
        text=alt.Text("value:Q", format=fmt),
        color=alt.condition(alt.datum.value > peak / 2, alt.value("white"), alt.value("black")),
    )
    return (heat + text).properties(height=300)


def per_class_bars(per_class: dict[str, dict[str, float]]) -> alt.Chart:
    """per_class: model -> class -> accuracy; grouped bars."""
    rows = [{"model": m, "class": c, "accuracy": a} for m, d in per_class.items() for c, a in d.items()]
    return (
        alt.Chart(pd.DataFrame(rows))
        .mark_bar()
        .encode(
            x=alt.X("class:N", sort=None, title=None),
            xOffset="model:N",
            y=alt.Y("accuracy:Q", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%")),
            color=alt.Color("model:N", legend=alt.Legend(orient="bottom", labelLimit=300)),  # the bars keep the width
            tooltip=["model", "class", alt.Tooltip("accuracy:Q", format=".1%")],
        )
        .properties(height=260)
    )


def per_class_heatmap(per_class: dict[str, dict[str, float]]) -> alt.Chart:
    """Per-class accuracy, a row per model in `per_class` order; slanted class labels and a legend below, so that
    a phone shows every class and readable cells."""
    rows = [{"model": m, "class": c, "accuracy": a} for m, d in per_class.items() for c, a in d.items()]
    base = alt.Chart(pd.DataFrame(rows)).encode(
        x=alt.X("class:N", sort=None, title=None, axis=alt.Axis(labelAngle=-35, labelOverlap=False)),
        y=alt.Y("model:N", sort=list(per_class), title=None, axis=alt.Axis(labelLimit=150, labelOverlap=False)),
    )
    colour = alt.Color("accuracy:Q", scale=alt.Scale(scheme="viridis", domain=[0, 1]), legend=alt.Legend(orient="bottom"))
    cells = base.mark_rect().encode(color=colour, tooltip=["model", "class", alt.Tooltip("accuracy:Q", format=".1%")])
    text = base.mark_text(fontSize=10).encode(
        text=alt.Text("accuracy:Q", format=".0%"),
        color=alt.condition("datum.accuracy > 0.6", alt.value("black"), alt.value("white")),  # on viridis' yellow end
    )
    return cells + text


def roc_chart(roc: dict[str, RocCurve]) -> alt.Chart:
    rows = []
    for cls, curve in roc.items():
        label = f"{cls} (AUC {curve.auc:.3f})"
        rows += [{"class": label, "fpr": f, "tpr": t} for f, t in zip(curve.fpr, curve.tpr, strict=True)]
    lines = (
        alt.Chart(pd.DataFrame(rows))
        .mark_line()
        .encode(x=alt.X("fpr:Q", title="false positive rate"), y=alt.Y("tpr:Q", title="true positive rate"), color="class:N")
    )
    diagonal = (
        alt.Chart(pd.DataFrame({"fpr": [0, 1], "tpr": [0, 1]}))
        .mark_line(strokeDash=[4, 4], color="grey")
        .encode(x="fpr", y="tpr")
    )
    return (lines + diagonal).properties(height=300)


def _curves(histories: dict[str, Sequence[EpochStats]], metric: str) -> pd.DataFrame:
    """One row per run, epoch and split (train, val) of `metric` ('loss' or 'acc')."""
    rows = [
        {"run": run, "epoch": h.epoch, "split": split, "value": getattr(h, f"{split}_{metric}")}
        for run, history in histories.items()
        for h in history
        for split in ("train", "val")
    ]
    return pd.DataFrame(rows or [{"run": "", "epoch": 0, "split": "train", "value": 0.0}])


def _legend_below(**style: Any) -> alt.Legend:
    """Below the plot, one entry a line: long run names fit a phone."""
    return alt.Legend(orient="bottom", direction="vertical", labelLimit=400, **style)


def training_curves(histories: dict[str, Sequence[EpochStats]], metric: str) -> alt.Chart:
    """metric: 'loss' or 'acc'; train dashed, val solid, one colour per run."""
    df = _curves(histories, metric)
    return (
        alt.Chart(df)
        .mark_line(point=bool(df["epoch"].max() <= 30))  # markers help a short run, clutter hundreds of epochs
        .encode(
            x=alt.X("epoch:Q", axis=alt.Axis(format="d", tickMinStep=1)),
            y=alt.Y("value:Q", title=metric),
            color=alt.Color("run:N", scale=alt.Scale(scheme="tableau10"), legend=_legend_below()),  # light and dark
            strokeDash=alt.StrokeDash(
                "split:N", legend=_legend_below(symbolType="stroke", symbolStrokeColor="#888888", symbolStrokeWidth=2)
            ),
            tooltip=["run", "epoch", "split", alt.Tooltip("value:Q", format=".4f")],
        )
        .properties(height=220 + 18 * (len(histories) + 3))  # Streamlit fits the legends below into the height
    )


def _span(values: pd.Series) -> list[float]:
    """A shared axis' domain; widened around a single value (one epoch), which Vega cannot draw an axis for."""
    low, high = float(values.min()), float(values.max())
    return [low, high] if high > low else [low - 0.5, high + 0.5]


def training_curve_panels(histories: dict[str, Sequence[EpochStats]], metric: str) -> list[alt.Chart]:
    """Small multiples, for more runs than one chart keeps apart: a panel per run (train and validation in two
    colours) on shared axes, so runs still compare. Separate charts, not a Vega facet: Streamlit's columns
    stack them on a phone, where a fixed facet grid ran off the screen."""
    df = _curves(histories, metric)
    x = alt.X("epoch:Q", scale=alt.Scale(domain=_span(df["epoch"])), axis=alt.Axis(format="d", tickMinStep=1))
    y = alt.Y("value:Q", title=metric, scale=alt.Scale(domain=_span(df["value"]), zero=False, nice=True))
    split = alt.Color("split:N", scale=alt.Scale(domain=["train", "val"], scheme="tableau10"), legend=None)  # named in a caption
    return [
        alt.Chart(df[df["run"] == run], title=alt.Title(run, fontSize=12, anchor="start"))
        .mark_line(point=bool(df["epoch"].max() == 1))  # one epoch is a point, not a line
        .encode(x=x, y=y, color=split, tooltip=["run", "epoch", "split", alt.Tooltip("value:Q", format=".4f")])
        .properties(height=200)
        for run in histories
    ]


def reliability_chart(bins: list[ReliabilityBin]) -> alt.Chart:
    df = pd.DataFrame([asdict(b) for b in bins])
    bars = (
        alt.Chart(df)
        .mark_bar(opacity=0.7)
        .encode(
            x=alt.X("confidence:Q", scale=alt.Scale(domain=[0, 1])),
            y=alt.Y("accuracy:Q", scale=alt.Scale(domain=[0, 1])),
            tooltip=["confidence", "accuracy", "count"],
        )
    )
    ideal = (
        alt.Chart(pd.DataFrame({"confidence": [0, 1], "accuracy": [0, 1]}))
        .mark_line(strokeDash=[4, 4], color="grey")
        .encode(x="confidence", y="accuracy")
    )
    return (bars + ideal).properties(height=260)


INTERVAL_GREY = "#8c8c8c"  # confidence-interval bars, visible on the light and the dark theme


def points_with_intervals(points: list[PointResult]) -> alt.Chart:
    """A study's points: mean accuracy over seeds (dots) with the bootstrap 95% interval (bars); baseline in orange."""
    from fer_core.studies.report import point_label

    rows = [
        {
            "point": point_label(p.point),
            "accuracy": p.accuracy_mean,
            "low": p.accuracy_ci.low,
            "high": p.accuracy_ci.high,
            "baseline": p.baseline,
        }
        for p in points
    ]
    axis = alt.Axis(labelLimit=280, labelOverlap=False)  # Vega would hide labels it thinks collide; the tooltip has all
    base = alt.Chart(pd.DataFrame(rows)).encode(y=alt.Y("point:N", sort="-x", title=None, axis=axis))
    bars = base.mark_rule(strokeWidth=2, color=INTERVAL_GREY).encode(
        x=alt.X("low:Q", title="PrivateTest accuracy", axis=alt.Axis(format="%"), scale=alt.Scale(zero=False)), x2="high:Q"
    )
    dots = base.mark_point(filled=True, size=80).encode(
        x="accuracy:Q",
        color=alt.condition("datum.baseline", alt.value("#e4572e"), alt.value("#1f77b4")),
        tooltip=[
            "point",
            alt.Tooltip("accuracy:Q", format=".2%"),
            alt.Tooltip("low:Q", format=".2%"),
            alt.Tooltip("high:Q", format=".2%"),
        ],
    )
    return (bars + dots).properties(height=36 * len(rows) + 40)


def accuracy_along(points: list[PointResult], axis: str, axis_range: Range) -> alt.Chart:
    """A searched range: each point's accuracy (interval bars) against its value of `axis`, on a log scale when the
    range is; where along the range the good points lie."""
    from fer_core.studies.report import point_label

    rows = [
        {
            axis: p.point[axis],
            "accuracy": p.accuracy_mean,
            "low": p.accuracy_ci.low,
            "high": p.accuracy_ci.high,
            "baseline": p.baseline,
            "point": point_label(p.point),
        }
        for p in points
    ]
    x = alt.X(f"{axis}:Q", scale=alt.Scale(type="log" if axis_range.log else "linear", domain=[axis_range.low, axis_range.high]))
    base = alt.Chart(pd.DataFrame(rows)).encode(x=x)
    bars = base.mark_rule(strokeWidth=2, color=INTERVAL_GREY).encode(
        y=alt.Y("low:Q", title="PrivateTest accuracy", axis=alt.Axis(format="%"), scale=alt.Scale(zero=False)), y2="high:Q"
    )
    dots = base.mark_point(filled=True, size=70).encode(
        y="accuracy:Q",
        color=alt.condition("datum.baseline", alt.value("#e4572e"), alt.value("#1f77b4")),
        tooltip=["point", alt.Tooltip("accuracy:Q", format=".2%")],
    )
    return (bars + dots).properties(height=260, title=axis)


def expression_color(classes: Sequence[str]) -> alt.Color:
    """One colour per class, the same in every chart that is given the same class list."""
    return alt.Color("label:N", title="expression", scale=alt.Scale(domain=list(classes), scheme="tableau10"), sort=list(classes))


def probability_timeline(points: Sequence[TimelinePoint], classes: Sequence[str], window_s: float | None = None) -> alt.Chart:
    """One face's class probabilities over time; `window_s`: only the last seconds, the axis scrolling with them."""
    frame = pd.DataFrame([asdict(p) for p in points])
    end = float(frame["time_s"].max())
    x_scale = alt.Scale(domain=[max(0.0, end - window_s), max(end, window_s)]) if window_s else alt.Scale(zero=False)
    return (
        alt.Chart(frame)
        .mark_line(strokeWidth=2, interpolate="monotone", clip=True)
        .encode(
            x=alt.X("time_s:Q", title="seconds", scale=x_scale),
            y=alt.Y("probability:Q", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%"), title=None),
            color=expression_color(classes),
            tooltip=["label", alt.Tooltip("time_s:Q", format=".1f"), alt.Tooltip("probability:Q", format=".0%")],
        )
        .properties(height=190)  # the legend of eight classes fits
    )


def expression_shares(shares: Sequence[ExpressionShare], classes: Sequence[str], models: Sequence[str]) -> alt.Chart:
    """One face's share of time in each expression, a bar per model (and the ensemble), in `models` order."""
    return (
        alt.Chart(pd.DataFrame([asdict(s) | {"label_order": list(classes).index(s.label)} for s in shares]))
        .mark_bar()
        .encode(
            x=alt.X("share:Q", stack="normalize", axis=alt.Axis(format="%"), title=None),  # the caption above names it
            y=alt.Y("model:N", title=None, axis=alt.Axis(labelLimit=320), sort=list(models)),
            # below the bars, in rows: beside them, seven classes are taller than a chart of two or three models
            color=expression_color(classes).legend(orient="bottom", columns=4, title=None),
            order=alt.Order("label_order:Q"),
            tooltip=["model", "label", alt.Tooltip("share:Q", format=".0%")],
        )
        .properties(height=alt.Step(24))
    )


DISPLAY_SIDE = 800  # px: a photo is shown in half the page at most; sending more costs encoding and transfer


def draw_faces(rgb: np.ndarray, boxes: list[tuple[int, int, int, int]], detected: list[bool]) -> np.ndarray:
    """The photo at display size (longest side DISPLAY_SIDE at most) with numbered face boxes (green: detected,
    orange: fallback crop)."""
    scale = min(1.0, DISPLAY_SIDE / max(rgb.shape[:2]))
    if scale < 1:
        rgb = cv2.resize(rgb, (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale)), interpolation=cv2.INTER_AREA)
        boxes = [(round(x * scale), round(y * scale), round(w * scale), round(h * scale)) for x, y, w, h in boxes]
    titles = [str(n) for n in range(1, len(boxes) + 1)]
    return draw_boxes(rgb, boxes, titles, [DETECTED if ok else FALLBACK for ok in detected])


def upscale(face: np.ndarray, size: int = 144) -> np.ndarray:
    return cv2.resize(face, (size, size), interpolation=cv2.INTER_NEAREST if face.shape[0] <= 48 else cv2.INTER_AREA)


def data_url(face: np.ndarray) -> str:
    """A PNG data URL, for face thumbnails in chart tooltips."""
    import base64

    ok, buf = cv2.imencode(".png", face)
    return "data:image/png;base64," + base64.b64encode(buf.tobytes()).decode() if ok else ""


def embedding_scatter(xy: np.ndarray, labels: list[str], predicted: list[str], faces: np.ndarray) -> alt.Chart:
    df = pd.DataFrame(
        {"x": xy[:, 0], "y": xy[:, 1], "true": labels, "predicted": predicted, "image": [data_url(f) for f in faces]}
    )
    return (
        alt.Chart(df)
        .mark_circle(size=40, opacity=0.75)
        .encode(
            x=alt.X("x:Q", axis=None),
            y=alt.Y("y:Q", axis=None),
            color=alt.Color("true:N", title="true class"),
            tooltip=["image", "true", "predicted"],
        )
        .properties(height=480)
    )


def accuracy_latency(frame: pd.DataFrame, architectures: Sequence[str]) -> alt.Chart:
    """Test accuracy against CPU latency for one label set, each point named; `architectures`: every registered
    name, so an architecture keeps its colour when checkpoints are added. Columns: model, id, architecture,
    test accuracy (%), CPU latency (ms), parameters (M)."""
    # timm models asked by name follow the registry's colours, in name order (stable as checkpoints come and go)
    by_name = sorted(set(frame["architecture"]) - set(architectures))
    colour = alt.Color("architecture:N", scale=alt.Scale(domain=[*architectures, *by_name], scheme="tableau20"), legend=None)
    base = alt.Chart(frame).encode(
        x=alt.X("CPU latency (ms):Q", scale=alt.Scale(type="log")),
        y=alt.Y("test accuracy:Q", title="test accuracy (%)", scale=alt.Scale(zero=False)),
        color=colour,
    )
    points = base.mark_circle(opacity=0.8).encode(
        size=alt.Size("parameters (M):Q", scale=alt.Scale(range=[60, 700]), legend=None),
        tooltip=[
            "model",
            "id",
            alt.Tooltip("test accuracy:Q", format=".2f", title="test accuracy (%)"),
            alt.Tooltip("parameters (M):Q", format=".2f"),
            alt.Tooltip("CPU latency (ms):Q", format=".1f"),
        ],
    )
    labels = base.mark_text(align="left", dx=9, fontSize=11).encode(text="architecture:N")  # its point's colour
    return (points + labels).properties(height=340)


def blank(size: int) -> np.ndarray:
    """A light grey square the size of a map: keeps a grid of maps aligned where a model has none."""
    return np.full((size, size), 235, np.uint8)


BUCKET_COLOURS = ("#4c9f70", "#f0a202", "#d1495b", "#8e6c8a", "#9aa5b1")  # correct green; the crowd's verdicts apart


def bucket_bars(shares: dict[str, dict[str, int]], labels: dict[str, str]) -> alt.Chart:
    """Stacked bars, a row per model: the share of its test faces in each label-noise bucket (`labels` in order)."""
    rows = [
        {"model": m, "bucket": labels[b], "order": i, "faces": n, "share": n / max(sum(counts.values()), 1)}
        for m, counts in shares.items()
        for i, (b, n) in enumerate(counts.items())
    ]
    colour = alt.Color(
        "bucket:N",
        sort=list(labels.values()),
        scale=alt.Scale(domain=list(labels.values()), range=list(BUCKET_COLOURS)),
        legend=_legend_below(title=None),
    )
    return (
        alt.Chart(pd.DataFrame(rows))
        .mark_bar()
        .encode(
            x=alt.X("share:Q", stack="zero", axis=alt.Axis(format="%"), title="test faces"),
            y=alt.Y("model:N", sort=list(shares), title=None, axis=alt.Axis(labelLimit=150, labelOverlap=False)),
            color=colour,
            order="order:Q",
            tooltip=["model", "bucket", "faces", alt.Tooltip("share:Q", format=".1%")],
        )
        .properties(height=28 * len(shares) + 120)
    )


def vote_bars(votes: Sequence[float], labels: Sequence[str]) -> alt.Chart:
    """One face's crowd votes (ten, FER+)."""
    frame = pd.DataFrame({"vote": list(labels), "votes": list(votes)})
    return (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            x=alt.X("votes:Q", scale=alt.Scale(domain=[0, 10]), axis=alt.Axis(tickMinStep=1)),
            y=alt.Y("vote:N", sort=list(labels), title=None, axis=alt.Axis(labelOverlap=False)),
            tooltip=["vote", "votes"],
        )
        .properties(height=24 * len(labels))
    )


def robustness_panel(curves: dict[str, dict[int, float]], title: str, models: Sequence[str]) -> alt.Chart:
    """Accuracy against severity (0: the clean faces) for one corruption, a line per model, on a shared 0-1 axis."""
    rows = [{"model": m, "severity": s, "accuracy": a} for m, points in curves.items() for s, a in points.items()]
    return (
        alt.Chart(pd.DataFrame(rows), title=alt.TitleParams(title, fontSize=12))
        .mark_line(point=True)
        .encode(
            x=alt.X("severity:Q", axis=alt.Axis(tickMinStep=1, format="d"), scale=alt.Scale(domain=[0, 5])),
            y=alt.Y("accuracy:Q", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%"), title=None),
            color=alt.Color("model:N", sort=list(models), scale=alt.Scale(scheme="tableau10"), legend=None),
            tooltip=["model", "severity", alt.Tooltip("accuracy:Q", format=".1%")],
        )
        .properties(height=170)
    )


def model_legend(models: Sequence[str]) -> alt.LayerChart:
    """The colours robustness_panel gives the models, drawn once for all panels: a dot and the name, a line each."""
    base = alt.Chart(pd.DataFrame({"model": list(models), "row": range(len(models))})).encode(
        y=alt.Y("row:O", axis=None),
        color=alt.Color("model:N", sort=list(models), scale=alt.Scale(scheme="tableau10"), legend=None),
    )
    dots = base.mark_point(filled=True, size=80).encode(x=alt.value(6))
    names = base.mark_text(align="left", dx=0, fontSize=12).encode(x=alt.value(16), text="model:N")
    return (dots + names).properties(height=20 * len(models), width=400)
