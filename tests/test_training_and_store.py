from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import replace

import numpy as np
import pytest
import torch

from fer_core import list_checkpoints, load_checkpoint
from fer_core.data import load_dataset
from fer_core.inference import predict_logits
from fer_core.models import get_spec
from fer_core.naming import base_name, display_names
from fer_core.records import CheckpointMeta, CheckpointRef, Predictions, StudyTrial
from fer_core.store import (
    HIDDEN_FILE,
    SHIPPED_FILE,
    CheckpointError,
    annotate_checkpoint,
    checkpoint_dir,
    delete_checkpoint,
    hidden_checkpoints,
    load_predictions,
    meta_json,
    read_meta,
    save_checkpoint,
    set_hidden,
    shipped_checkpoints,
)
from fer_core.training import (
    Callbacks,
    TrainConfig,
    TrainingCancelled,
    TrainingDiverged,
    config_from,
    fit,
    loop,
    make_config,
    train_and_save,
)
from fer_core.training import run as run_module
from fer_core.training.loop import autocast_dtype
from fer_core.training.targets import TeacherError, teacher_probabilities, training_targets

from .conftest import REPO


def test_tiny_run_writes_a_complete_checkpoint(tiny_checkpoints, kaggle_zip):
    infos = list_checkpoints(tiny_checkpoints)
    assert {i.meta.model for i in infos} == {"keras_cnn", "xception_fer"}
    meta = next(i.meta for i in infos if i.meta.model == "keras_cnn")
    data = load_dataset(kaggle_zip)
    assert meta.classes == data.classes and meta.input == get_spec("keras_cnn").input and meta.seed == 0
    assert meta.data.fingerprint == data.fingerprint and meta.data.source == kaggle_zip.name
    assert meta.data.split_sizes == {"train": 21, "val": 7, "test": 7}
    assert meta.config.model == "keras_cnn" and meta.config.epochs == 2 and meta.weights_dtype == "float16"
    assert set(meta.versions) >= {"torch", "torchvision", "kornia", "numpy", "python"} and meta.created_at >= meta.started_at
    assert [e.epoch for e in meta.history] == [1, 2] and meta.epochs_run == 2 and 1 <= meta.best_epoch <= 2
    assert meta.stop_reason == "epochs" and not meta.stopped_early  # ran out its 2 epochs
    assert meta.parameters == sum(p.numel() for p in get_spec("keras_cnn").build(7).parameters())
    assert meta.test_metrics.n == 7 and meta.train_time_s == pytest.approx(meta.history[-1].elapsed_s)
    text = (infos[0].path / "meta.json").read_text()
    assert text == meta_json(infos[0].meta) and read_meta(infos[0].path) == infos[0].meta
    assert json.loads(text)["stopped_early"] is False and json.loads(text)["epochs_run"] == 2


def test_meta_json_keeps_one_line_per_epoch(tiny_checkpoints):
    meta = list_checkpoints(tiny_checkpoints)[0].meta
    history = tuple(meta.history[0].__class__(**{**meta.history[0].to_dict(), "epoch": e}) for e in range(1, 301))
    long = CheckpointMeta.from_json({**meta.to_json(), "history": [e.to_dict() for e in history]})
    text = meta_json(long)
    assert CheckpointMeta.from_json(json.loads(text)) == long
    assert sum('"epoch"' in line for line in text.splitlines()) == 300 and len(text.splitlines()) < 450


def test_old_meta_json_still_loads(tiny_checkpoints, tmp_path):
    """Files written before typed metadata: stopped_early said true for budgeted runs, efficiency named its
    throughput after batch 256, compile was a boolean, amp said whether CUDA autocasts, and unknown keys of other
    versions must survive."""
    store = tmp_path / "store"
    info = _copy_store(tiny_checkpoints, store)[0]
    raw = json.loads((info.path / "meta.json").read_text())
    raw |= {
        "stopped_early": True,
        "stop_reason": "time_budget",
        "future_key": {"x": 1},
        "efficiency": {
            "latency_ms_b1": 2.0,
            "macs": 5,
            "measured_at": "t",
            "measured_on": "m",
            "processor": "p",
            "threads": 2,
            "throughput_b256": 300.0,
        },
    }
    raw["config"]["compile"] = False
    raw["config"]["amp"] = False
    del raw["config"]["precision"]
    del raw["config"]["teachers"], raw["config"]["teacher_weight"]
    (info.path / "meta.json").write_text(json.dumps(raw))
    meta = read_meta(info.path)
    assert meta.stop_reason == "time_budget" and not meta.stopped_early
    assert meta.efficiency.throughput_per_s == 300.0 and meta.efficiency.throughput_batch == 256
    assert meta.config.compile == "none" and meta.config.teachers == () and meta.config.precision == "fp32"
    annotate_checkpoint(info.id, store, card="kept")
    assert json.loads((info.path / "meta.json").read_text())["future_key"] == {"x": 1}
    raw |= {"stop_reason": "completed"}
    (info.path / "meta.json").write_text(json.dumps(raw))
    assert read_meta(info.path).stop_reason == "epochs"


def test_reloaded_checkpoint_reproduces_stored_predictions(tiny_checkpoints, kaggle_zip):
    """Stored predictions come from the float16 weights as saved: reloading gives the same classes and the
    same probabilities (to float rounding), so Evaluate shows exactly what ships."""
    data = load_dataset(kaggle_zip)
    for info in list_checkpoints(tiny_checkpoints):
        clf = load_checkpoint(info.id, root=tiny_checkpoints)
        fresh, stored = clf.evaluate(data, "test"), load_predictions(info.path)
        assert np.array_equal(fresh.labels, stored.labels) and fresh.names == stored.names
        assert np.array_equal(fresh.predicted, stored.predicted)
        # float32 arithmetic in another memory layout leaves ~1e-8; predictions of the unrounded float32 weights
        # differed from these by ~1e-5 even for these 2-epoch models
        assert np.allclose(fresh.probs, stored.probs, rtol=0, atol=1e-6)
        # and the API on raw arrays agrees with the dataset path
        faces = data.take("test")[0][:, 0].numpy()
        assert np.allclose(clf.predict_proba(faces), fresh.probs, atol=1e-6)


def test_learning_happens_on_learnable_fixture(kaggle_zip, tmp_path):
    """A few epochs on class-dependent patterns must beat chance on train: the loop really optimises."""
    data = load_dataset(kaggle_zip)
    spec = get_spec("keras_cnn")
    cfg = make_config("keras_cnn", "quick", epochs=8, batch_size=7, augment="none", lr=3e-3, device="cpu")
    torch.manual_seed(0)
    model = spec.build(7)
    result = fit(model, spec, data, cfg, torch.device("cpu"))
    assert result.history[-1].train_loss < result.history[0].train_loss
    assert result.history[-1].train_acc > 0.5


def _run(kaggle_zip, data=None, **kw):
    data = data if data is not None else load_dataset(kaggle_zip)
    spec = get_spec("keras_cnn")
    kw.setdefault("batch_size", 8)
    cfg = make_config("keras_cnn", "quick", device="cpu", **kw)
    torch.manual_seed(0)
    return fit(spec.build(7), spec, data, cfg, torch.device("cpu"))


@pytest.fixture(scope="module")
def skewed_data(kaggle_zip):
    """The fixture with two training faces relabelled 'happy': its classes are no longer balanced, so class
    weights and oversampling have something to change."""
    data = load_dataset(kaggle_zip)
    labels = data.labels.clone()
    labels[data.indices("train")[:2]] = data.classes.index("happy")
    return replace(data, labels=labels)


@pytest.fixture(scope="module")
def baseline_losses(kaggle_zip, skewed_data) -> list[float]:
    """Training losses of the quick recipe without any option (same seed): an option that changes nothing
    would reproduce them exactly."""
    return [e.train_loss for e in _run(kaggle_zip, skewed_data, epochs=2, augment="none").history]


@pytest.mark.parametrize(
    "option",
    [
        dict(optimizer="sgd"),
        dict(optimizer="adamw", weight_decay=0.5),
        dict(optimizer="rmsprop"),
        dict(mixup_alpha=0.4),
        dict(balance="weighted"),
        dict(balance="oversample"),
        dict(label_smoothing=0.2),
        dict(grad_clip=1e-3),
        dict(augment="strong"),
        dict(augment="robust"),
        dict(augment="robust_mix"),
        dict(precision="bf16"),  # autocast on the CPU: bf16 rounding changes every loss
    ],
    ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()),
)
def test_each_training_option_changes_training(kaggle_zip, skewed_data, baseline_losses, option):
    result = _run(kaggle_zip, skewed_data, epochs=2, **{"augment": "none", **option})
    losses = [e.train_loss for e in result.history]
    assert all(np.isfinite(losses)) and losses != pytest.approx(baseline_losses, rel=1e-6, abs=1e-9)


def test_bf16_where_it_would_not_run_is_refused_not_recorded(monkeypatch, tmp_path):
    # autocast_dtype is what the trainer asks; MPS does not exist here, but torch.device("mps") can be named
    assert autocast_dtype("bf16", torch.device("cpu")) == torch.bfloat16
    assert autocast_dtype("auto", torch.device("mps")) is None
    with pytest.raises(ValueError, match="precision: bf16 .* not on mps"):
        autocast_dtype("bf16", torch.device("mps"))
    # a run refuses before it reads any data (which, with teachers, takes minutes)
    monkeypatch.setattr(run_module, "resolve_device", lambda name: torch.device("mps"))
    monkeypatch.setattr(run_module, "load_dataset", lambda *a, **k: pytest.fail("the data was read before the refusal"))
    cfg = make_config("keras_cnn", "quick", data=str(tmp_path / "fer2013.zip"), precision="bf16")
    with pytest.raises(ValueError, match="precision: bf16 .* not on mps"):
        train_and_save(cfg, root=tmp_path)


@pytest.mark.parametrize(
    "scheduler, expected",
    [
        ("step", [1e-3, 1e-3, 1e-4, 1e-4]),  # step_size 2, gamma 0.1: the lr of each epoch
        ("exponential", [1e-3, 5e-4, 2.5e-4, 1.25e-4]),
        ("none", [1e-3] * 4),
    ],
)
def test_schedulers_set_the_learning_rate_of_each_epoch(kaggle_zip, scheduler, expected):
    result = _run(
        kaggle_zip, epochs=4, scheduler=scheduler, step_size=2, gamma=0.5 if scheduler == "exponential" else 0.1, warmup_epochs=0
    )
    assert [e.lr for e in result.history] == pytest.approx(expected)


def test_plateau_scheduler_lowers_the_rate_when_validation_stalls(kaggle_zip):
    # lr 1e-6 changes next to nothing: validation accuracy stalls after epoch 1, so with patience 1 the third
    # epoch without improvement halves the rate (ReduceLROnPlateau ignores changes below 1e-8: not 1e-9 here)
    result = _run(kaggle_zip, epochs=4, lr=1e-6, scheduler="plateau", plateau_patience=1, gamma=0.5, select_by="val_acc")
    assert [e.lr for e in result.history] == pytest.approx([1e-6, 1e-6, 1e-6, 5e-7])


def test_early_stopping_ends_the_run_and_says_so(kaggle_zip):
    # lr 1e-9: validation accuracy never rises after epoch 1, so patience 1 stops the run at epoch 2
    result = _run(kaggle_zip, epochs=6, lr=1e-9, early_stopping=1)
    assert [e.epoch for e in result.history] == [1, 2] and result.stop_reason == "early_stopping"
    assert _run(kaggle_zip, epochs=2).stop_reason == "epochs"


def test_optimizer_and_scheduler_tables_cover_every_name_and_refuse_others():
    from types import SimpleNamespace

    from fer_core.training.config import OPTIMIZERS, SCHEDULERS
    from fer_core.training.optim import OPTIMIZER_FACTORIES, SCHEDULE_FACTORIES, make_optimizer, make_schedule

    assert set(OPTIMIZER_FACTORIES) == set(OPTIMIZERS) and set(SCHEDULE_FACTORIES) == set(SCHEDULERS)
    params = [torch.nn.Parameter(torch.zeros(1))]
    kinds = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD, "rmsprop": torch.optim.RMSprop}
    for name, kind in kinds.items():
        assert type(make_optimizer(params, TrainConfig(model="keras_cnn", optimizer=name))) is kind
    with pytest.raises(ValueError, match="unknown optimizer 'lion'"):
        make_optimizer(params, SimpleNamespace(optimizer="lion"))
    with pytest.raises(ValueError, match="unknown scheduler 'warm'"):
        make_schedule(torch.optim.SGD(params, lr=0.1), SimpleNamespace(scheduler="warm"), 10)


def test_last_batch_of_one_face_is_dropped(kaggle_zip):
    """21 training faces in batches of 4 leave one face over: BatchNorm layers cannot train on it alone."""
    result = _run(kaggle_zip, epochs=1, batch_size=4)  # cnn with BatchNorm1d in its head
    assert np.isfinite(result.history[0].train_loss)


@pytest.mark.parametrize("batch_size", [4, 8])
def test_augmenting_several_batches_per_call_keeps_faces_and_labels_aligned(kaggle_zip, monkeypatch, batch_size):
    """The GPU path augments chunks of batches; without augmentation it must train exactly like one batch per call."""

    def run(chunk_images: int) -> list[dict]:
        monkeypatch.setitem(loop.AUGMENT_CHUNK_IMAGES, "cpu", chunk_images)
        torch.manual_seed(0)
        return [e.to_dict() for e in _run(kaggle_zip, epochs=2, batch_size=batch_size, augment="none").history]

    per_batch, chunked = run(0), run(3 * batch_size)
    for a, b in zip(per_batch, chunked, strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-6)
        assert a["train_acc"] == b["train_acc"] and a["val_acc"] == b["val_acc"]


def test_freeze_backbone_trains_only_the_head(kaggle_zip):
    data = load_dataset(kaggle_zip)
    spec = get_spec("shufflenet_v2")
    model = spec.build(7)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = make_config("shufflenet_v2", "quick", epochs=1, batch_size=8, freeze_backbone=True, device="cpu")
    fit(model, spec, data, cfg, torch.device("cpu"))
    after = model.state_dict()
    assert torch.equal(before["conv1.0.weight"], after["conv1.0.weight"])
    assert not torch.equal(before["fc.weight"], after["fc.weight"])


def test_soft_label_training_on_ferplus(kaggle_zip, ferplus_dir, tmp_path):
    data = load_dataset(kaggle_zip, labels="ferplus", ferplus_dir=ferplus_dir)
    cfg = make_config("keras_cnn", "quick", epochs=1, batch_size=8, labels="ferplus", soft_labels=True, device="cpu")
    path = train_and_save(cfg, data=data, root=tmp_path, measure_efficiency=False)
    meta = read_meta(path)
    assert meta.classes[-1] == "contempt" and meta.config.soft_labels is True


def test_divergence_stops_without_checkpoint(kaggle_zip, tmp_path):
    cfg = make_config("keras_cnn", "quick", epochs=2, batch_size=8, lr=1e12, optimizer="sgd", data=str(kaggle_zip), device="cpu")
    # it reports the rate in force when the loss broke (the cosine has halved the base 1e12 by batch 3 of 6)
    with pytest.raises(TrainingDiverged, match=r"^loss became NaN at epoch 1, batch 3 \(lr 5e\+11\): lower the learning rate$"):
        train_and_save(cfg, root=tmp_path, measure_efficiency=False)
    assert not any(tmp_path.iterdir())


def test_weights_broken_by_the_last_step_are_never_kept(kaggle_zip):
    """The last step can leave non-finite weights after a finite training loss (seen in a study trial: the test
    metrics then failed inside scikit-learn with 'Input contains NaN'): validation catches them, in the same words."""
    data = load_dataset(kaggle_zip)
    spec = get_spec("keras_cnn")
    cfg = make_config("keras_cnn", "quick", epochs=2, batch_size=8, augment="none", device="cpu")
    model = spec.build(7)

    def break_after_last_batch(epoch: int, batch: int, batches: int, loss: torch.Tensor) -> None:
        if batch == batches:
            with torch.no_grad():
                next(model.parameters()).fill_(float("nan"))

    with pytest.raises(TrainingDiverged, match=r"^validation loss became NaN at epoch 1 \(lr .+\): lower the learning rate$"):
        fit(model, spec, data, cfg, torch.device("cpu"), Callbacks(on_batch=break_after_last_batch))


def test_cancel_between_batches_writes_nothing(kaggle_zip, tmp_path):
    calls = []
    cb = Callbacks(should_stop=lambda: len(calls) >= 2, on_batch=lambda *a: calls.append(a))
    cfg = make_config("keras_cnn", "quick", epochs=2, batch_size=4, data=str(kaggle_zip), device="cpu")
    with pytest.raises(TrainingCancelled):
        train_and_save(cfg, root=tmp_path, callbacks=cb, measure_efficiency=False)
    assert len(calls) == 2 and not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("asked_after", "during"),
    [("the last training batch", "validation after epoch 1"), ("the last epoch", "testing")],
)
def test_cancel_reaches_the_validation_and_test_passes(kaggle_zip, tmp_path, asked_after, during):
    """A cancel asked while the model validates or tests stops there (on a CPU those passes take minutes)."""
    asked: list[bool] = []

    def last_batch(epoch: int, batch: int, batches: int, loss: torch.Tensor) -> None:
        if asked_after == "the last training batch" and batch == batches:
            asked.append(True)

    cb = Callbacks(
        should_stop=lambda: bool(asked),
        on_batch=last_batch,
        on_epoch=lambda stats: asked.append(True) if asked_after == "the last epoch" else None,
    )
    cfg = make_config("keras_cnn", "quick", epochs=1, batch_size=8, data=str(kaggle_zip), device="cpu")
    with pytest.raises(TrainingCancelled, match=f"^cancelled during {during}$"):
        train_and_save(cfg, root=tmp_path, callbacks=cb, measure_efficiency=False)
    assert not any(tmp_path.iterdir())


def test_resume_continues_from_last_epoch(kaggle_zip, tmp_path):
    data = load_dataset(kaggle_zip)
    spec = get_spec("keras_cnn")
    state = tmp_path / "state.pt"
    epochs_seen = []
    cfg = make_config("keras_cnn", "quick", epochs=3, batch_size=8, device="cpu")
    stop_after_first = Callbacks(on_epoch=lambda s: epochs_seen.append(s.epoch), should_stop=lambda: len(epochs_seen) >= 1)
    with pytest.raises(TrainingCancelled):
        fit(spec.build(7), spec, data, cfg, torch.device("cpu"), stop_after_first, state)
    assert state.is_file()
    result = fit(
        spec.build(7), spec, data, cfg, torch.device("cpu"), Callbacks(on_epoch=lambda s: epochs_seen.append(s.epoch)), state
    )
    assert epochs_seen == [1, 2, 3] and [e.epoch for e in result.history] == [1, 2, 3]


class SteppingClock:
    """Every reading advances 50 ms: the run "takes" the same time on any machine, however busy."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        self.now += 0.05
        return self.now


def test_time_budget_anneals_over_wall_clock_and_stops_in_time(kaggle_zip, monkeypatch):
    monkeypatch.setattr(loop, "time", SteppingClock())
    budget_min = 0.05  # 3 s of the stepping clock: several epochs, far fewer than the cap
    result = _run(kaggle_zip, epochs=500, warmup_epochs=0, time_budget_min=budget_min)
    lrs = [e.lr for e in result.history]
    assert result.stop_reason == "time_budget" and 3 <= len(lrs) < 500
    assert lrs == sorted(lrs, reverse=True) and lrs[-1] < 0.5 * lrs[0]  # the cosine ran over the budget
    assert result.train_time_s <= budget_min * 60


def test_config_validation():
    with pytest.raises(ValueError, match="optimizer must be one of"):
        TrainConfig(model="keras_cnn", optimizer="lion")
    with pytest.raises(ValueError, match="scheduler must be one of"):
        TrainConfig(model="keras_cnn", scheduler="warm")
    with pytest.raises(ValueError, match="soft labels"):
        TrainConfig(model="keras_cnn", soft_labels=True)
    with pytest.raises(ValueError, match="time budget"):
        TrainConfig(model="keras_cnn", time_budget_min=10, scheduler="step")
    cfg = make_config("vgg_fer")
    assert cfg.optimizer == "sgd" and TrainConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="compile"):
        TrainConfig(model="keras_cnn", compile="fast")
    # configs stored before compile modes existed said true/false
    assert TrainConfig.from_dict({**cfg.to_dict(), "compile": True}).compile == "default"
    assert TrainConfig.from_dict({**cfg.to_dict(), "compile": False}).compile == "none"


def test_a_shorter_or_longer_run_keeps_its_recipes_share_of_warm_up():
    """resnet18's recipe warms up 3 of 80 epochs: a 2-epoch run (a study's quick profile) would otherwise be all
    warm-up, its learning rate never reaching the recipe's."""
    assert (make_config("resnet18").epochs, make_config("resnet18").warmup_epochs) == (80, 3)
    assert make_config("resnet18", epochs=2).warmup_epochs == 0
    assert make_config("resnet18", epochs=160).warmup_epochs == 6
    assert make_config("resnet18", epochs=2, warmup_epochs=1).warmup_epochs == 1  # given: kept
    assert make_config("resnet18", epochs=1000, time_budget_min=20).warmup_epochs == 3  # epochs only bound the budget


def test_a_run_again_from_a_previous_runs_settings_keeps_them_but_what_changes():
    """The sidebar's "last run's settings": everything of the previous run is kept, a cleared time budget is
    cleared (None is a change, not "the recipe's"), and other epochs keep the previous run's share of warm-up."""
    previous = make_config("resnet18", epochs=80, augment="robust", lr=0.005, time_budget_min=25, seed=3)
    again = config_from(previous, time_budget_min=None, init_from=None, teachers=())
    assert again.time_budget_min is None and (again.augment, again.lr, again.seed) == ("robust", 0.005, 3)
    assert again.warmup_epochs == previous.warmup_epochs == 3
    assert config_from(previous, epochs=8).warmup_epochs == 0  # 3 of 80 is none of 8
    assert config_from(previous, epochs=160).warmup_epochs == 6


# ---------------------------------------------------------------- store


def test_a_write_where_no_file_can_go_names_the_file_asked_for(tmp_path):
    from fer_core.atomic import write_text_atomically

    (tmp_path / "a-file").write_text("")
    target = tmp_path / "a-file" / "meta.json"  # its folder would have to be a file
    with pytest.raises(OSError, match="cannot write there") as raised:
        write_text_atomically(target, "{}")
    assert raised.value.filename == str(target) and ".tmp" not in str(raised.value)


def _copy_store(src, dst):
    shutil.copytree(src, dst)
    return list_checkpoints(dst)


def test_corrupt_weights_and_mismatched_meta_are_clear_errors(tiny_checkpoints, tmp_path):
    infos = _copy_store(tiny_checkpoints, tmp_path / "ck")
    a, b = infos[0], infos[1]
    weights = a.path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(a.id, root=tmp_path / "ck")
    meta = json.loads((b.path / "meta.json").read_text())
    meta["model"] = "resnet18"
    (b.path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="do not match architecture resnet18"):
        load_checkpoint(b.id, root=tmp_path / "ck")
    meta["model"], meta["classes"] = "keras_cnn" if "keras" in b.id else "xception_fer", ["happy", "sad"]
    (b.path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="do not match"):
        load_checkpoint(b.id, root=tmp_path / "ck")
    (b.path / "meta.json").write_text("{not json")
    listed = list_checkpoints(tmp_path / "ck")
    assert len(listed) == 2 and any(not i.ok and "meta.json" in i.error for i in listed)


def test_pickle_checkpoint_is_never_unpickled(tiny_checkpoints, tmp_path):
    infos = _copy_store(tiny_checkpoints, tmp_path / "ck")
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"state": Evil()}, infos[0].path / "model.safetensors")
    with pytest.raises(CheckpointError):
        load_checkpoint(infos[0].id, root=tmp_path / "ck")
    assert not marker.exists()


@pytest.mark.parametrize("bad", ["../escape", "/etc", "a/../../b", "..", ""])
def test_path_traversal_ids_are_refused(bad, tmp_path):
    with pytest.raises(CheckpointError):
        checkpoint_dir(bad, tmp_path)


def test_symlink_escaping_the_store_is_refused(tmp_path):
    (tmp_path / "store").mkdir()
    (tmp_path / "outside").mkdir()
    (tmp_path / "store" / "link").symlink_to(tmp_path / "outside")
    with pytest.raises(CheckpointError, match="outside"):
        checkpoint_dir("link", tmp_path / "store")


def _meta_and_predictions(tiny_checkpoints) -> tuple[CheckpointMeta, Predictions]:
    info = list_checkpoints(tiny_checkpoints)[0]
    return info.meta, load_predictions(info.path)


@pytest.mark.parametrize("failing", ["safetensors.torch.save_file", "safetensors.numpy.save_file"])
def test_failed_save_leaves_no_partial_checkpoint(tiny_checkpoints, tmp_path, monkeypatch, failing):
    def disk_full(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(failing, disk_full)  # the store imports it when it writes
    meta, predictions = _meta_and_predictions(tiny_checkpoints)
    with pytest.raises(OSError, match="No space"):
        save_checkpoint({"w": torch.zeros(1)}, meta, predictions, root=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_read_only_store_fails_cleanly(tiny_checkpoints, tmp_path, monkeypatch):
    """Simulated: the store's temp directory cannot be created (read-only folder; tests may run as root)."""
    import fer_core.store as store

    def read_only(*a, **k):
        raise PermissionError(13, "Read-only file system")

    meta, predictions = _meta_and_predictions(tiny_checkpoints)
    monkeypatch.setattr(store.tempfile, "mkdtemp", read_only)
    with pytest.raises(PermissionError):
        save_checkpoint({"w": torch.zeros(1)}, meta, predictions, root=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_annotations_never_touch_training_facts(tiny_checkpoints, tmp_path):
    infos = _copy_store(tiny_checkpoints, tmp_path / "store")
    cid = infos[0].id
    before = infos[0].meta
    meta = annotate_checkpoint(cid, tmp_path / "store", card="Fails at 48x48: see the training curve.")
    assert meta.card.startswith("Fails") and replace(meta, card=before.card) == before
    assert list_checkpoints(tmp_path / "store")[0].meta.card == meta.card
    with pytest.raises(TypeError):
        annotate_checkpoint(cid, tmp_path / "store", test_metrics={"accuracy": 1.0})
    assert not list((tmp_path / "store" / cid).glob(".*.tmp"))


def test_delete_checkpoint(tiny_checkpoints, tmp_path):
    infos = _copy_store(tiny_checkpoints, tmp_path / "ck")
    delete_checkpoint(infos[0].id, tmp_path / "ck")
    assert [i.id for i in list_checkpoints(tmp_path / "ck")] == [infos[1].id]
    with pytest.raises(CheckpointError):
        delete_checkpoint(infos[0].id, tmp_path / "ck")


def test_hidden_checkpoints_are_remembered_and_shipped_ones_never_deleted(tiny_checkpoints, tmp_path):
    root = tmp_path / "ck"
    a, b = (i.id for i in _copy_store(tiny_checkpoints, root))
    assert set_hidden([a], True, root) == {a} and hidden_checkpoints(root) == {a}
    assert {i.id for i in list_checkpoints(root)} == {a, b}  # hiding is a view setting: nothing moves
    (root / SHIPPED_FILE).write_text(f"# shipped\n{b}\n")
    assert shipped_checkpoints(root) == {b}
    with pytest.raises(CheckpointError, match="hide it instead"):
        delete_checkpoint(b, root)
    assert (root / b).is_dir()
    delete_checkpoint(a, root)  # a hidden, user-trained checkpoint: gone, and no longer listed as hidden
    assert hidden_checkpoints(root) == frozenset() and not (root / a).exists()
    (root / HIDDEN_FILE).write_text("{not json")
    assert hidden_checkpoints(root) == frozenset()  # a damaged file hides nothing
    with pytest.raises(CheckpointError):
        set_hidden(["../outside"], True, root)


def test_shipped_txt_lists_every_checkpoint_the_repository_ships():
    """The app must never offer to delete a checkpoint under version control (a user's own may sit beside them)."""
    tracked = subprocess.run(["git", "ls-files", "checkpoints"], cwd=REPO, capture_output=True, text=True)
    if tracked.returncode != 0:
        pytest.skip("not a git checkout")
    in_git = {line.split("/")[1] for line in tracked.stdout.splitlines() if line.endswith("/meta.json")}
    assert in_git and shipped_checkpoints(REPO / "checkpoints") == in_git


def test_display_names_are_short_and_unique():
    metas = [i.meta for i in list_checkpoints(REPO / "checkpoints")]
    names = display_names(metas)
    assert names["resnet18-fer2013-20261123-044459"] == "resnet18 · FER2013"
    assert names["keras_cnn_wide-ferplus-20261123-020832"] == "keras_cnn_wide · FER+"
    twin = replace(metas[0], id=metas[0].id + "-2", created_at="2026-12-01T10:00:00+00:00")
    pair = display_names([metas[0], twin])
    assert len(set(pair.values())) == 2 and all(n.startswith(base_name(metas[0]) + " · ") for n in pair.values())
    assert pair[twin.id].endswith("01 Dec")
    robust = replace(twin, config=replace(twin.config, augment="robust", blur_pool=True))
    shipped_and_robust = display_names([metas[0], robust])
    assert shipped_and_robust == {metas[0].id: base_name(metas[0]), robust.id: f"{base_name(metas[0])} · robust blur-pool"}


def test_shipped_names_stay_put_and_trials_of_two_studies_are_told_apart():
    shipped = next(i.meta for i in list_checkpoints(REPO / "checkpoints") if i.meta.model == "resnet18")
    base = base_name(shipped)
    own = replace(shipped, id="resnet18-mine", created_at="2026-12-04T09:00:00+00:00")
    assert display_names([shipped, own], keep=frozenset({shipped.id})) == {shipped.id: base, own.id: f"{base} · 04 Dec"}
    trials = [
        replace(own, id=f"{study}-p00-s0", study=StudyTrial(f"{study}-quick-1", study, "quick", "p00-s0", {}, 0))
        for study in ("optimizers", "architectures")
    ]
    names = display_names([shipped, *trials], keep=frozenset({shipped.id}))
    assert names == {
        shipped.id: base,
        "optimizers-p00-s0": f"{base} · optimizers p00-s0",
        "architectures-p00-s0": f"{base} · architectures p00-s0",
    }


def _teacher(tiny_checkpoints, model: str = "keras_cnn"):
    return next(i for i in list_checkpoints(tiny_checkpoints) if i.meta.model == model)


def test_teacher_targets_mix_label_and_teacher(kaggle_zip):
    data = load_dataset(kaggle_zip)
    n, k = len(data.indices("train")), len(data.classes)
    teacher = torch.full((n, k), 1.0 / k)
    targets = training_targets(data, make_config("keras_cnn", "quick", teachers=("t",), teacher_weight=0.25), teacher)
    labels = data.labels[data.indices("train")]
    assert torch.allclose(targets.sum(1), torch.ones(n))
    assert torch.allclose(targets[torch.arange(n), labels], torch.full((n,), 0.75 + 0.25 / k))
    with pytest.raises(TeacherError, match="do not match"):
        training_targets(data, make_config("keras_cnn", "quick"), teacher[:-1])


def test_fit_trains_towards_the_given_targets(kaggle_zip):
    """Targets that all say 'happy' must pull the model there, whatever the labels say."""
    data = load_dataset(kaggle_zip)
    spec = get_spec("keras_cnn")
    n, happy = len(data.indices("train")), data.classes.index("happy")
    torch.manual_seed(0)
    model = spec.build(len(data.classes))
    cfg = make_config("keras_cnn", "quick", epochs=6, batch_size=8, lr=3e-3, augment="none", device="cpu")
    fit(
        model,
        spec,
        data,
        cfg,
        torch.device("cpu"),
        targets=torch.nn.functional.one_hot(torch.full((n,), happy), len(data.classes)).float(),
    )
    preds = predict_logits(model, data.take("val")[0], spec.input, torch.device("cpu")).argmax(1)
    assert (preds == happy).float().mean() >= 0.9


def test_distillation_run_records_its_teachers(tiny_checkpoints, kaggle_zip, tmp_path):
    teacher = _teacher(tiny_checkpoints)
    cfg = make_config(
        "xception_fer",
        "quick",
        data=str(kaggle_zip),
        epochs=1,
        batch_size=8,
        device="cpu",
        teachers=(str(teacher.path),),
        teacher_weight=0.7,
    )
    meta = read_meta(train_and_save(cfg, root=tmp_path, measure_efficiency=False))
    assert meta.config.teachers == (str(teacher.path),) and meta.config.teacher_weight == 0.7
    assert meta.teachers == (
        CheckpointRef(
            id=teacher.id, model="keras_cnn", data_fingerprint=meta.data.fingerprint, test_accuracy=teacher.meta.accuracy
        ),
    )


def test_teachers_must_share_classes_and_data(tiny_checkpoints, kaggle_zip):
    teacher = str(_teacher(tiny_checkpoints).path)
    data = load_dataset(kaggle_zip)
    probs, _ = teacher_probabilities([teacher], data)
    assert probs.shape == (len(data.indices("train")), len(data.classes))
    assert torch.allclose(probs.sum(1), torch.ones(len(probs)))
    with pytest.raises(TeacherError, match="predicts"):
        teacher_probabilities([teacher], data.with_classes(["happy", "sad"]))
    relabelled = replace(data, labels=data.labels.roll(1), fingerprint="")
    with pytest.raises(TeacherError, match="leak"):
        teacher_probabilities([teacher], relabelled)


def test_init_from_starts_at_the_checkpoint_weights(tiny_checkpoints, kaggle_zip, tmp_path):
    start = _teacher(tiny_checkpoints)
    cfg = make_config(
        "keras_cnn", "quick", data=str(kaggle_zip), epochs=1, batch_size=8, lr=1e-12, device="cpu", init_from=str(start.path)
    )
    path = train_and_save(cfg, root=tmp_path, measure_efficiency=False)
    assert read_meta(path).init_from == CheckpointRef(
        id=start.id, model="keras_cnn", data_fingerprint=start.meta.data.fingerprint, test_accuracy=start.meta.accuracy
    )
    before = load_checkpoint(start.path).model.state_dict()
    after = load_checkpoint(path).model.state_dict()
    convs = [k for k in before if k.endswith("weight") and before[k].ndim == 4]
    assert convs and all(torch.allclose(before[k], after[k], atol=1e-3) for k in convs)
    other = make_config(
        "keras_cnn",
        "quick",
        data=str(kaggle_zip),
        epochs=1,
        device="cpu",
        init_from=str(_teacher(tiny_checkpoints, "xception_fer").path),
    )
    with pytest.raises(ValueError, match="cannot start a keras_cnn"):
        train_and_save(other, root=tmp_path, measure_efficiency=False)


def test_distillation_config_validation():
    with pytest.raises(ValueError, match="teacher_weight"):
        TrainConfig(model="keras_cnn", teachers=("a",), teacher_weight=0.0)
    with pytest.raises(ValueError, match="alternatives"):
        TrainConfig(model="resnet18", init_from="a", pretrained=True)
    cfg = TrainConfig(model="keras_cnn", teachers=("a", "b"), init_from="c")
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_cancel_while_teachers_predict_writes_nothing(tiny_checkpoints, kaggle_zip, tmp_path, monkeypatch):
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "cache"))  # no cached teacher predictions: they must run
    stages = []
    cb = Callbacks(should_stop=lambda: True, on_stage=stages.append)
    cfg = make_config(
        "keras_cnn", "quick", data=str(kaggle_zip), epochs=1, device="cpu", teachers=(str(_teacher(tiny_checkpoints).path),)
    )
    with pytest.raises(TrainingCancelled, match="teacher"):
        train_and_save(cfg, root=tmp_path / "store", callbacks=cb, measure_efficiency=False)
    assert stages == ["1 teacher(s) predicting the training faces"] and not (tmp_path / "store").exists()


def test_teacher_predictions_are_cached_by_weights_and_data(tiny_checkpoints, kaggle_zip, tmp_path, monkeypatch):
    from fer_core.training import targets

    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "cache"))
    teacher = str(_teacher(tiny_checkpoints).path)
    data = load_dataset(kaggle_zip)
    first, _ = teacher_probabilities([teacher], data)
    [cached] = (tmp_path / "cache" / "teachers").glob("*.safetensors")
    logits = targets.predict_logits

    def no_predictions(*args, **kwargs):
        raise AssertionError("the teacher predicted although its predictions were cached")

    monkeypatch.setattr(targets, "predict_logits", no_predictions)
    again, _ = teacher_probabilities([teacher], data)
    assert torch.equal(again, first)
    cached.write_bytes(b"damaged")  # a damaged entry is recomputed, never trusted
    with pytest.raises(AssertionError, match="predicted"):
        teacher_probabilities([teacher], data)
    monkeypatch.setattr(targets, "predict_logits", logits)
    assert torch.allclose(teacher_probabilities([teacher], data)[0], first)
    assert cached.read_bytes() != b"damaged"  # and written again


def test_ablation_knobs_are_trained_recorded_and_reloaded(kaggle_zip, tmp_path):
    """activation, norm and dropout of a custom CNN land in meta.json and rebuild the same network on load."""
    cfg = make_config(
        "keras_cnn",
        "quick",
        data=str(kaggle_zip),
        epochs=1,
        batch_size=8,
        device="cpu",
        activation="gelu",
        norm="group",
        dropout=0.1,
    )
    path = train_and_save(cfg, root=tmp_path, measure_efficiency=False)
    meta = read_meta(path)
    assert (meta.config.activation, meta.config.norm, meta.config.dropout) == ("gelu", "group", 0.1)
    clf = load_checkpoint(path)
    kinds = {type(m).__name__ for m in clf.model.modules()}
    assert {"GELU", "GroupNorm"} <= kinds and not {"ReLU", "BatchNorm2d"} & kinds
    assert all(m.p == 0.1 for m in clf.model.modules() if isinstance(m, torch.nn.Dropout))
    fresh = clf.evaluate(load_dataset(kaggle_zip), "test")
    assert np.allclose(fresh.probs, load_predictions(path).probs, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="takes no activation"):
        get_spec("resnet18").build(7, activation="elu")
    with pytest.raises(ValueError, match="augment must be one of"):
        TrainConfig(model="keras_cnn", augment="robustest")
    with pytest.raises(ValueError, match="activation must be one of"):
        TrainConfig(model="keras_cnn", activation="tanh")


@pytest.mark.parametrize("model", ["keras_cnn", "keras_cnn_avgpool", "xception_fer"])
def test_blur_pool_is_recorded_reloaded_and_starts_from_a_plain_checkpoint(model, tiny_checkpoints, kaggle_zip, tmp_path):
    """Anti-aliased downsampling adds no weights: the state dict keeps the plain network's keys (so `--init-from` a
    plain parent works), meta.json records it and loading rebuilds the blurred network."""
    spec = get_spec(model)
    plain, blurred = spec.build(7), spec.build(7, blur_pool=True)
    assert plain.state_dict().keys() == blurred.state_dict().keys()

    def strided(net: torch.nn.Module) -> list[str]:
        """Every subsampling layer: a blur (kornia's blur pools) or a plain stride of 2."""
        blurs = [type(m).__name__ for m in net.modules() if type(m).__name__ in ("BlurPool2D", "MaxBlurPool2D")]
        layers = (torch.nn.Conv2d, torch.nn.MaxPool2d, torch.nn.AvgPool2d)
        return blurs + ["stride 2" for m in net.modules() if isinstance(m, layers) and m.stride in (2, (2, 2))]

    assert set(strided(plain)) == {"stride 2"} and "stride 2" not in strided(blurred)
    assert len(strided(blurred)) == len(strided(plain))  # each subsampling blurred, none added
    with pytest.raises(ValueError, match="resnet18 takes no blur_pool option"):
        get_spec("resnet18").build(7, blur_pool=True)
    with pytest.raises(ValueError, match="resnet18 takes no blur_pool option"):  # before any data loads
        TrainConfig(model="resnet18", blur_pool=True)
    if model != "keras_cnn":
        return
    parent = next(i for i in list_checkpoints(tiny_checkpoints) if i.meta.model == model)
    cfg = make_config(model, "quick", data=str(kaggle_zip), epochs=1, batch_size=8, device="cpu", blur_pool=True)
    path = train_and_save(replace(cfg, init_from=str(parent.path)), root=tmp_path, measure_efficiency=False)
    meta = read_meta(path)
    assert meta.config.blur_pool and meta.init_from is not None
    clf = load_checkpoint(path)
    assert any(type(m).__name__ == "MaxBlurPool2D" for m in clf.model.modules())
    fresh = clf.evaluate(load_dataset(kaggle_zip), "test")
    assert np.allclose(fresh.probs, load_predictions(path).probs, rtol=0, atol=1e-6)


def test_interrupted_fine_tune_writes_nothing_and_resumes_from_its_epoch(tiny_checkpoints, kaggle_zip, tmp_path):
    """A robust fine-tune (`--init-from`, robust preset) cancelled after its first epoch leaves no checkpoint; resumed,
    it continues after that epoch (the first is not trained again) and records its parent."""
    parent = next(i for i in list_checkpoints(tiny_checkpoints) if i.meta.model == "keras_cnn")
    cfg = make_config("keras_cnn", "quick", data=str(kaggle_zip), epochs=2, batch_size=8, device="cpu", augment="robust")
    cfg = replace(cfg, init_from=str(parent.path))
    store, state, epochs_seen = tmp_path / "store", tmp_path / "state.pt", []
    stop_after_first = Callbacks(on_epoch=lambda s: epochs_seen.append(s.epoch), should_stop=lambda: len(epochs_seen) >= 1)
    with pytest.raises(TrainingCancelled):
        train_and_save(cfg, root=store, callbacks=stop_after_first, state_file=state, measure_efficiency=False)
    assert state.is_file() and not list_checkpoints(store)
    resumed = Callbacks(on_epoch=lambda s: epochs_seen.append(s.epoch))
    path = train_and_save(cfg, root=store, callbacks=resumed, state_file=state, measure_efficiency=False)
    meta = read_meta(path)
    assert epochs_seen == [1, 2] and [e.epoch for e in meta.history] == [1, 2]
    assert meta.init_from is not None and meta.init_from.id == parent.id and meta.config.augment == "robust"
