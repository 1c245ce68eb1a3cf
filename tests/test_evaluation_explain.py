from __future__ import annotations

import csv
import io

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score

from fer_core import list_checkpoints, load_checkpoint
from fer_core.data import load_dataset, to_model_input
from fer_core.efficiency import count_macs, efficiency, measure_speed
from fer_core.evaluation import (
    EnsembleError,
    compute_metrics,
    ensemble_probs,
    evaluate_ensemble,
    expected_calibration_error,
    mcnemar,
    misclassified,
    misclassified_faces,
    select_ensemble,
    standings,
)
from fer_core.explain import (
    colour_scale,
    embed_test_faces,
    feature_grid,
    feature_layers,
    feature_maps,
    grad_cam,
    integrated_gradients,
    overlay_heatmap,
)
from fer_core.faces import Face, find_faces, load_photo
from fer_core.models import get_spec
from fer_core.predict import FacePrediction, ModelPrediction, PhotoPrediction
from fer_core.records import Predictions
from fer_core.store import load_predictions

from .conftest import synthetic_face

CLASSES = ("a", "b", "c")


def test_metrics_on_a_known_case():
    labels = np.array([0, 0, 1, 1, 2, 2])
    probs = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1], [0.1, 0.6, 0.3], [0.3, 0.3, 0.4], [0.6, 0.3, 0.1]])
    m = compute_metrics(Predictions(probs, labels, tuple("123456"), CLASSES))
    assert m.accuracy == pytest.approx(accuracy_score(labels, probs.argmax(1))) == pytest.approx(4 / 6)
    assert m.confusion_matrix == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert m.per_class_accuracy == {"a": 0.5, "b": 1.0, "c": 0.5}
    assert m.confusion_matrix_normalized[0] == [0.5, 0.5, 0.0]
    assert m.top2_accuracy == pytest.approx(5 / 6)
    assert set(m.roc) == set(CLASSES) and 0 <= m.micro_auc <= 1
    assert m.classification_report["b"]["recall"] == 1.0
    assert m.headline().accuracy == m.accuracy and m.headline().per_class_accuracy == m.per_class_accuracy


def test_metrics_refuse_non_finite_probabilities_with_the_reason():
    probs = np.array([[0.8, 0.1, 0.1], [np.nan, np.nan, np.nan], [0.1, 0.8, 0.1]])
    with pytest.raises(ValueError, match=r"^1 of 3 faces have NaN or infinite probabilities: .+ lower learning rate$"):
        compute_metrics(Predictions(probs, np.array([0, 1, 1]), tuple("123"), CLASSES))


def _answers(correct: np.ndarray, names: tuple[str, ...] | None = None) -> Predictions:
    """Made-up predictions over three classes: right where `correct`, class (label + 1) % 3 elsewhere."""
    labels = np.arange(len(correct)) % 3
    predicted = np.where(correct, labels, (labels + 1) % 3)
    names = names or tuple(f"{i}.png" for i in range(len(correct)))
    return Predictions(np.eye(3)[predicted], labels, names, CLASSES)


def test_standings_tell_a_real_lead_from_noise():
    rng = np.random.default_rng(0)
    base = rng.random(2000) < 0.7
    tie = base.copy()
    tie[np.flatnonzero(base)[:1]] = False  # one face fewer: 0.05 points behind
    behind = base.copy()
    behind[np.flatnonzero(base)[:120]] = False  # 6 points behind on the same faces
    s = standings({"best": _answers(base), "tie": _answers(tie), "behind": _answers(behind)})
    assert s["best"].p_holm is None and s["best"].verdict() == "most accurate"
    assert s["tie"].best_within_noise and s["tie"].p_holm == pytest.approx(1.0)
    assert not s["behind"].best_within_noise and s["behind"].p_holm < 1e-6
    assert s["behind"].verdict().startswith("behind the best (p ")
    assert s["best"].interval.low < s["best"].accuracy < s["best"].interval.high
    # Holm: the raw p of the tie (1.0) and of the lead both count; the adjusted p is never below the raw one
    raw = mcnemar(_answers(base).predicted, _answers(behind).predicted, _answers(base).labels).p_value
    assert s["behind"].p_holm >= raw


def test_standings_compare_models_on_the_faces_both_saw():
    names = tuple(f"{i}.png" for i in range(300))
    full = _answers(np.ones(300, bool), names)
    partial = Predictions(full.probs[100:], full.labels[100:], names[100:], CLASSES)  # 100 faces left out
    s = standings({"full": full, "partial": partial})
    assert s["partial"].p_holm == pytest.approx(1.0)  # the same answers on the 200 shared faces


def test_ece_is_zero_when_calibrated_and_large_when_overconfident():
    labels = np.array([0, 1] * 50)
    calibrated = np.tile([[0.5, 0.5]], (100, 1))
    assert expected_calibration_error(calibrated, labels) == pytest.approx(0.0, abs=1e-9)
    overconfident = np.tile([[0.99, 0.01]], (100, 1))
    assert expected_calibration_error(overconfident, labels) == pytest.approx(0.49, abs=1e-6)


def test_select_ensemble_keeps_complementary_members_and_drops_noise():
    labels = np.array([0, 1] * 6)
    onehot = np.eye(2)[labels]
    left = onehot.copy()
    left[:4] = [0.45, 0.55]  # wrong but unsure on the first four faces
    right = onehot.copy()
    right[8:] = [0.45, 0.55]  # wrong but unsure on the last four
    noise = np.eye(2)[1 - labels]  # confidently wrong everywhere
    chosen = select_ensemble({"left": left, "right": right, "noise": noise}, labels)
    assert sorted(chosen) == ["left", "right"]  # together they are right on every face; noise only hurts
    assert select_ensemble({}, labels) == []


def test_misclassified_lists_the_most_confident_mistakes_first():
    probs = np.array([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.1, 0.3, 0.6], [0.4, 0.35, 0.25], [0.05, 0.9, 0.05]])
    labels = np.array([0, 0, 1, 2, 2])  # face 0 right, faces 1-4 wrong
    assert misclassified(probs, labels).tolist() == [4, 1, 2, 3]
    assert misclassified(probs, labels, true_class=2).tolist() == [4, 3]
    assert misclassified(probs, labels, predicted_class=1).tolist() == [4, 1]
    assert misclassified(probs, labels, true_class=2, predicted_class=0).tolist() == [3]
    assert misclassified(probs, np.argmax(probs, 1)).size == 0


def test_mcnemar():
    labels = np.zeros(100, int)
    a = np.zeros(100, int)
    b = a.copy()
    b[:30] = 1  # b wrong on 30 faces where a is right
    r = mcnemar(a, b, labels)
    assert (r.only_a_correct, r.only_b_correct) == (30, 0) and r.significant
    assert mcnemar(a, a, labels).p_value == 1.0


def test_ensemble_is_the_mean_and_checks_shapes():
    p1, p2 = np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]])
    assert np.allclose(ensemble_probs([p1, p2]), [[0.5, 0.5]])
    with pytest.raises(ValueError):
        ensemble_probs([p1, np.zeros((2, 2))])


def test_evaluate_ensemble_averages_members_on_the_same_faces():
    labels, names = np.array([0, 1, 1]), ("x", "y", "z")
    a = Predictions(np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8]]), labels, names, ("p", "q"))  # right on 2
    b = Predictions(np.array([[0.4, 0.6], [0.1, 0.9], [0.3, 0.7]]), labels, names, ("p", "q"))  # right on 2
    result = evaluate_ensemble({"a": a, "b": b})
    assert np.allclose(result.predictions.probs, (a.probs + b.probs) / 2) and result.metrics.accuracy == 1.0
    assert result.members == ("a", "b") and result.best_member == "a" and result.best_member_accuracy == pytest.approx(2 / 3)
    with pytest.raises(EnsembleError, match="same faces"):
        evaluate_ensemble({"a": a, "b": Predictions(b.probs, labels, ("x", "y", "w"), b.classes)})
    with pytest.raises(EnsembleError, match="share classes"):
        evaluate_ensemble({"a": a, "b": Predictions(b.probs, labels, names, ("p", "r"))})
    with pytest.raises(EnsembleError, match="at least two"):
        evaluate_ensemble({"a": a})


def test_misclassified_faces_come_with_their_pixels(tiny_checkpoints, kaggle_zip):
    info = list_checkpoints(tiny_checkpoints)[0]
    data = load_dataset(kaggle_zip)
    stored = load_predictions(info.path)
    total, shown = misclassified_faces(stored, data, limit=3)
    assert total == int((stored.predicted != stored.labels).sum()) and len(shown) == min(3, total)
    for mistake in shown:
        index = data.names.index(mistake.name)
        assert np.array_equal(mistake.face, data.images[index, 0].numpy())
        assert mistake.true_class == data.classes[int(data.labels[index])] != mistake.predicted_class
    assert [m.confidence for m in shown] == sorted((m.confidence for m in shown), reverse=True)


def test_photo_ensemble_averages_the_largest_group_sharing_a_class_list():
    """A FER+ model (8 classes) beside FER2013 models is left out of the mean instead of disabling it."""
    seven, eight = ["a", "b"], ["a", "b", "contempt"]

    def pred(classes, probs):
        return ModelPrediction(classes[int(np.argmax(probs))], dict(zip(classes, probs, strict=True)), 1.0)

    face = Face((0, 0, 48, 48), True, np.zeros((48, 48), np.uint8))
    fp = FacePrediction(
        face, {"m1": pred(seven, [1.0, 0.0]), "plus": pred(eight, [0.0, 0.0, 1.0]), "m2": pred(seven, [0.5, 0.5])}
    )
    ensemble = fp.ensemble()
    assert ensemble.members == ["m1", "m2"] and ensemble.probabilities == pytest.approx({"a": 0.75, "b": 0.25})
    assert ensemble.label == "a"
    assert FacePrediction(face, {"m1": fp.predictions["m1"], "plus": fp.predictions["plus"]}).ensemble() is None
    # m2's tie goes to its first class: two models vote "a", the FER+ model "contempt"; most votes first
    assert fp.votes() == {"a": ["m1", "m2"], "contempt": ["plus"]}
    assert fp.ensemble({"m1", "m2", "plus"}) == fp.ensemble() and fp.ensemble({"m1", "plus"}) is None  # chosen members
    photo = PhotoPrediction("p.jpg", image=np.zeros((48, 48, 3), np.uint8), faces=[fp], scale=2.0)  # decoded at half size
    rows = list(csv.DictReader(io.StringIO(photo.to_csv())))
    assert [r["model"] for r in rows] == ["m1", "plus", "m2", "ensemble"]  # the verdict the page headlines, too
    assert rows[0]["contempt"] == "" and rows[1]["contempt"] == "1.00000" and rows[0]["ensemble members"] == ""
    assert rows[3]["label"] == "a" and rows[3]["a"] == "0.75000" and rows[3]["ensemble members"] == "m1 m2"
    assert rows[0]["w"] == "96"  # boxes in the file's pixels
    face_json = photo.to_json()["faces"][0]
    assert not photo.no_face_found and face_json["predictions"]["m1"]["label"] == "a" and face_json["box"] == [0, 0, 96, 96]
    assert face_json["ensemble"] == {
        "members": ["m1", "m2"],
        "label": "a",
        "probabilities": pytest.approx({"a": 0.75, "b": 0.25}),
    }
    assert photo.to_json({"m1", "plus"})["faces"][0]["ensemble"] is None  # the members chosen on the page


def test_default_ensemble_leaves_out_other_classes_and_weak_models():
    from fer_core.data.classes import FER2013_CLASSES
    from fer_core.leaderboard import default_ensemble
    from fer_core.store import default_root

    metas = {c.id: c.meta for c in list_checkpoints(default_root()) if c.meta is not None}  # the shipped ten
    chosen = set(default_ensemble(metas.values()))
    best = max(m.test_metrics.accuracy for m in metas.values() if m.classes == FER2013_CLASSES)
    assert {metas[c].model for c in metas if c not in chosen} == {"alexnet", "keras_cnn_wide"}  # 44% and FER+
    assert all(metas[c].classes == FER2013_CLASSES and metas[c].test_metrics.accuracy > best - 0.1 for c in chosen)
    assert len(chosen) == 8


def test_efficiency_figures():
    spec = get_spec("keras_cnn")
    model = spec.build(7)
    macs = count_macs(model, spec.input)
    assert 50e6 < macs < 150e6  # three conv blocks at 48/24/12 px: ~87M MACs
    latency_ms, throughput = measure_speed(model, spec.input, repeats=3, batch=16)
    assert latency_ms > 0 and throughput > 0
    measured = efficiency(model, spec.input, batch=16)
    assert measured.macs == macs and measured.throughput_batch == 16 and measured.latency_ms_b1 > 0


def test_tta_averages_the_probabilities_of_its_views(tiny_checkpoints, kaggle_zip):
    """flip: the face and its mirror image; tencrop: the centre and four corner crops (90%), each mirrored."""
    clf = load_checkpoint(list_checkpoints(tiny_checkpoints)[0].id, root=tiny_checkpoints)
    faces, _ = load_dataset(kaggle_zip).take("test")
    plain = clf.probabilities(faces)
    assert torch.allclose(plain, torch.from_numpy(clf.predict_proba(faces)), atol=1e-6)
    assert torch.allclose(clf.probabilities(faces, "flip"), (plain + clf.probabilities(faces.flip(-1))) / 2, atol=1e-5)
    crops = [faces[..., top : top + 43, left : left + 43] for top, left in [(2, 2), (0, 0), (0, 5), (5, 0), (5, 5)]]
    views = [clf.probabilities(c.contiguous()) for c in crops] + [clf.probabilities(c.flip(-1).contiguous()) for c in crops]
    tencrop = clf.probabilities(faces, "tencrop")
    assert not torch.allclose(views[0], views[1], atol=1e-5)  # the views differ, so the mean below tells them apart
    assert torch.allclose(tencrop, torch.stack(views).mean(0), atol=1e-6)
    with pytest.raises(ValueError, match="tta"):
        clf.probabilities(faces, "rotate")


def test_logits_are_the_models_raw_outputs(tiny_checkpoints, kaggle_zip):
    clf = load_checkpoint(list_checkpoints(tiny_checkpoints)[0].id, root=tiny_checkpoints)
    faces, _ = load_dataset(kaggle_zip).take("test")
    logits = clf.logits(faces)
    with torch.inference_mode():
        raw = clf.model(to_model_input(faces, clf.input))
    assert torch.allclose(logits, raw, atol=1e-5) and not torch.allclose(logits.exp().sum(1), torch.ones(len(faces)))


def test_stored_predictions_match_meta(tiny_checkpoints):
    for info in list_checkpoints(tiny_checkpoints):
        m = compute_metrics(load_predictions(info.path))
        assert m.headline() == info.meta.test_metrics


def test_grad_cam_and_integrated_gradients_are_non_trivial(tiny_checkpoints):
    face = synthetic_face(3, 1)
    for info in list_checkpoints(tiny_checkpoints):
        clf = load_checkpoint(info.id, root=tiny_checkpoints)
        for method in (grad_cam, integrated_gradients):
            att = method(clf, face)
            assert att.heatmap.shape == (48, 48) and att.overlay.shape == (48, 48, 3)
            assert att.heatmap.max() == pytest.approx(1.0) and att.heatmap.std() > 0.01
            assert att.target in clf.classes
        chosen = grad_cam(clf, face, target="disgust")
        assert chosen.target == "disgust"


def test_grad_cam_on_every_registered_architecture(tiny_checkpoints):
    """The registry's Grad-CAM layer works for each model (random weights suffice), and for timm models by name."""
    from dataclasses import replace

    from fer_core.classifier import FerClassifier
    from fer_core.models import list_models

    face = synthetic_face(2, 2)
    tiny = list_checkpoints(tiny_checkpoints)[0].meta
    for spec in list_models() + [get_spec("timm:convnext_atto"), get_spec("timm:vit_tiny_patch16_224")]:
        clf = FerClassifier(spec.build(7), replace(tiny, model=spec.name, input=spec.input))
        att = grad_cam(clf, face)
        assert att.heatmap.shape == (48, 48) and np.isfinite(att.heatmap).all(), spec.name


def test_a_grad_cam_with_next_to_no_evidence_says_so(grace_hopper):
    """The shipped ResNet-18 on a neutral face: Grad-CAM for disgust (p < 1%) is empty, for neutral it covers the face."""
    from fer_core.store import default_root

    resnet = next(c for c in list_checkpoints(default_root()) if c.meta is not None and c.meta.model == "resnet18")
    clf = load_checkpoint(resnet.id, default_root())
    face = find_faces(load_photo(grace_hopper))[0].face
    neutral, disgust = grad_cam(clf, face, "neutral"), grad_cam(clf, face, "disgust")
    assert neutral.probability > 0.5 and not neutral.scant() and neutral.support > 0.5
    assert disgust.probability < 0.05 and disgust.scant()
    assert integrated_gradients(clf, face, "disgust").support == 1.0  # |IG| is evidence either way: never scant


def test_a_flat_attribution_stays_flat():
    """A 1x1 Grad-CAM layer upsampled is one value plus float noise: scaled to [0, 1] it would paint that noise."""
    from fer_core.explain import _normalise

    flat = np.full((48, 48), 0.37, np.float32) + np.random.default_rng(0).normal(0, 1e-9, (48, 48)).astype(np.float32)
    assert not _normalise(flat).any()
    ramp = np.linspace(0.2, 0.5, 48 * 48, dtype=np.float32).reshape(48, 48)
    assert _normalise(ramp).min() == 0 and _normalise(ramp).max() == pytest.approx(1)


def test_feature_maps(tiny_checkpoints):
    clf = load_checkpoint(list_checkpoints(tiny_checkpoints)[0].id, root=tiny_checkpoints)
    layers = feature_layers(clf)
    assert clf.spec.gradcam_layer in layers and len(layers) >= 3
    maps = feature_maps(clf, synthetic_face(1, 1), layers[0], max_maps=16)
    assert maps.ndim == 3 and len(maps) == 16 and maps.std() > 0
    grid = feature_grid(maps)
    assert grid.dtype == np.uint8 and grid.shape[0] > 48 * 3


def test_embedding_of_test_faces(tiny_checkpoints, kaggle_zip):
    clf = load_checkpoint(list_checkpoints(tiny_checkpoints)[0].id, root=tiny_checkpoints)
    data = load_dataset(kaggle_zip)
    emb = embed_test_faces(clf, data, n=100)
    test = data.indices("test")
    assert emb.xy.shape == (len(test), 2) and np.isfinite(emb.xy).all() and emb.xy.std(0).min() > 0
    assert sorted(emb.labels) == sorted(data.classes[i] for i in data.labels[test])  # every test face, once
    predicted = clf.evaluate(data, "test").predicted
    assert sorted(emb.predicted) == sorted(clf.classes[i] for i in predicted)
    assert {f.tobytes() for f in emb.faces} <= {f.tobytes() for f in data.images[test, 0].numpy()}
    again = embed_test_faces(clf, data, n=5)
    assert len(again.labels) == 5 and np.array_equal(again.xy, embed_test_faces(clf, data, n=5).xy)  # seeded
    with pytest.raises(ValueError, match="predicts"):
        embed_test_faces(clf, data.with_classes(["happy", "sad"]), n=5)


def test_the_colour_scale_is_the_overlays_own():
    bar = colour_scale(64, 4)
    assert bar.shape == (4, 64, 3) and bar.dtype == np.uint8
    low, high = bar[0, 0].astype(int), bar[0, -1].astype(int)
    assert low[2] > low[0] and high[0] > high[2]  # blue at the low end, red at the high end
    heat = np.tile(np.linspace(0, 1, 64, dtype=np.float32), (4, 1))
    assert np.array_equal(overlay_heatmap(np.zeros((4, 64), np.uint8), heat, alpha=1.0), bar)  # the same colours
