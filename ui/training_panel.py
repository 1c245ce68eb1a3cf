"""The sidebar training panel, on every page: configure, start in a background process, watch, cancel."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from fer_core.data import AUGMENT_PRESETS, LABEL_SOURCES, DataError
from fer_core.devices import DeviceChoices, describe_devices
from fer_core.models import TIMM_PREFIX, get_spec, list_models, timm_name
from fer_core.records import CheckpointMeta
from fer_core.training import (
    BALANCING,
    OPTIMIZERS,
    PRECISIONS,
    PRESETS,
    TrainConfig,
    config_from,
    make_config,
    preset_for,
)
from fer_core.training.jobs import JobBusy, JobStatus, cancel_job, list_jobs, start_job

from . import checkpoints, datasets
from .curves import learning_curves

BUSY_KEY = "train_busy"  # the "a job is already running" warning of this session


def _last_config() -> TrainConfig | None:
    """The settings of the last run started here (any session): the form opens on them after a reload."""
    return next((job.config for job in list_jobs() if job.config is not None), None)


@st.cache_resource(show_spinner=False)
def _devices() -> DeviceChoices:
    return describe_devices()


TIMM_CHOICE = "timm:"  # the architecture picker's entry for any timm model by name


def _architecture(last: TrainConfig | None) -> str | None:
    """The chosen model's name: a registered one, or any timm architecture searched by name (with an input size for
    those that need the faces upsampled). None, with the reason shown, while the timm choice cannot be built."""
    names = [s.name for s in list_models()] + [TIMM_CHOICE]
    previous = last.model if last else "keras_cnn"
    start = TIMM_CHOICE if previous.startswith(TIMM_PREFIX) else previous if previous in names else "keras_cnn"
    choice = st.selectbox(
        "Architecture",
        names,
        index=names.index(start),
        key="train_model",
        format_func=_architecture_label,
        help="Each with its size in millions of weights; the chosen one's design is described below",
    )
    model = choice if choice != TIMM_CHOICE else _timm_model(previous)
    if model is None:
        return None
    try:
        spec = get_spec(model)
    except (KeyError, ValueError) as exc:
        st.error(exc.args[0])
        return None
    st.caption(f"{spec.description} {spec.parameters_m:.2f} M weights.")
    return model


def _architecture_label(name: str) -> str:
    return "timm: any model by name…" if name == TIMM_CHOICE else f"{name} · {get_spec(name).parameters_m:.1f} M"


def _timm_model(previous: str) -> str | None:
    from fer_core.models.timm_zoo import parse_name, timm_names

    arch, size = parse_name(previous) if previous.startswith(TIMM_PREFIX) else (None, 48)
    names = list(timm_names())
    c1, c2 = st.columns([3, 1])
    chosen = c1.selectbox(
        "timm model",
        names,
        index=names.index(arch) if arch in names else None,
        key="train_timm",
        placeholder=f"type to search {len(names):,} models",
        help="Built by timm for one input channel and this dataset's classes; ImageNet weights only when asked",
    )
    pixels = c2.number_input(
        "Input px",
        32,
        512,
        size,
        key="train_timm_size",
        help="Faces are 48 px; networks that need more (Inception-ResNet: 75) get them upsampled",
    )
    return None if chosen is None else timm_name(chosen, int(pixels))


def render() -> None:
    with st.sidebar:
        st.header("Train a model")
        _progress()  # first: after Start, the run's progress is where the eye is, above the form
        info = _devices()
        gpu = ", ".join(info.cuda_devices) if info.cuda_devices else "no NVIDIA GPU: training runs on the CPU"
        st.caption(f"Device: {gpu}")
        last = _last_config()
        model = _architecture(last)
        if model is None:
            return
        pretrained, preset, start = _recipe(model, last)
        labels = st.selectbox(
            "Labels",
            LABEL_SOURCES,
            index=LABEL_SOURCES.index(start.labels) if start.labels in LABEL_SOURCES else 0,
            key="train_labels",
            help="FER+ needs fer2013new.csv next to the data; the checkpoints offered below follow it",
        )
        with st.form("train_form", border=False):
            data_path = st.text_input(
                "Dataset",
                value=last.data if last else datasets.default_dataset_path(),
                help="FER2013 as the Kaggle zip or folder, fer2013.csv, or any ImageFolder root",
            )
            settings = _run_settings(model, preset, start, info)
            settings |= _start_and_teachers(model, labels)
            submitted = st.form_submit_button("Start", type="primary", width="stretch")
        if submitted:
            _start(data_path, start, settings | {"labels": labels, "pretrained": pretrained})


LAST_RUN = "last"  # the preset select's first entry where this model ran before: that run's settings


def _recipe(model: str, last: TrainConfig | None) -> tuple[bool, str, TrainConfig]:
    """ImageNet weights (where the family has them) and the preset; the config the form starts from. Where the
    last run started here (kept across reloads) was of this model, its settings come first; else the family's
    recipe is preselected. Choosing a preset always starts from that recipe."""
    can_pretrain = get_spec(model).supports_pretrained
    pretrained = st.checkbox(
        "ImageNet weights",
        key="train_pretrained",
        disabled=not can_pretrain,
        help="torchvision and timm families; needs the weights downloaded once, or a local file via the CLI",
    )
    pretrained = pretrained and can_pretrain
    again = last is not None and last.model == model
    presets = [LAST_RUN] * again + list(PRESETS)
    preset = st.selectbox(
        "Preset",
        presets,
        index=0 if again else presets.index(preset_for(model, pretrained)),
        key=f"train_preset-{model}-{pretrained}",
        format_func=lambda name: "the last run's settings" if name == LAST_RUN else name,
        help="the last run's settings where this model ran last, else the family's recipe, are preselected; "
        "a preset starts the form from its recipe",
    )
    if preset == LAST_RUN and last is not None:
        return pretrained, preset, last
    return pretrained, preset, make_config(model, preset)  # the recipe as a TrainConfig: the form starts from it


def _run_settings(model: str, preset: str, start: TrainConfig, info: DeviceChoices) -> dict:
    """The schedule, augmentation, device, budget and data share of the run, as make_config's keyword arguments."""
    c1, c2 = st.columns(2)
    epochs = c1.number_input("Epochs", 1, 1000, start.epochs, key=f"train_epochs-{preset}")
    batch = c2.number_input("Batch size", 8, 1024, start.batch_size, step=8, key=f"train_batch-{preset}")
    lr = c1.number_input("Learning rate", 1e-6, 1.0, start.lr, format="%.5f", key=f"train_lr-{preset}")
    optimizer = c2.selectbox("Optimizer", OPTIMIZERS, index=OPTIMIZERS.index(start.optimizer), key=f"train_opt-{preset}")
    augment = c1.selectbox(
        "Augmentation",
        AUGMENT_PRESETS,
        index=AUGMENT_PRESETS.index(start.augment),
        key=f"train_aug-{preset}",
        help="light: flips and small shifts; strong: wider affine jitter, brightness/contrast, erasing; robust: "
        "strong plus blur, noise, low resolution and grey occlusion (never motion blur, JPEG or gamma, which "
        "the robustness suite holds out); robust_mix: the same mixed AugMix-style",
    )
    balance = c2.selectbox("Balancing", BALANCING, index=BALANCING.index(start.balance), key=f"train_balance-{preset}")
    device = c1.selectbox(
        "Device", info.choices, key="train_device", help="auto: the first CUDA GPU, else Apple MPS, else the CPU"
    )
    budget = c2.number_input(
        "Time budget (min)",
        0.0,
        10_000.0,
        float(start.time_budget_min or 0.0),
        step=1.0,
        key=f"train_budget-{preset}",
        help="0: none. With a budget the learning rate follows a cosine over the time and the epochs become "
        "an upper bound: the run ends on time, its best epoch kept. Wall-clock time: other work on the machine "
        "means fewer epochs, so give runs to compare epochs instead",
    )
    share = c1.number_input(
        "Training faces (%)",
        1,
        100,
        round(100 * start.train_fraction),
        key=f"train_share-{preset}",
        help="A stratified share of the training faces (every class keeps its share): a quick first run. "
        "Validation and test faces stay whole",
    )
    precision = c2.selectbox(
        "Precision",
        PRECISIONS,
        index=PRECISIONS.index(start.precision),
        key=f"train_precision-{preset}",
        help="auto: bf16/fp16 autocast on a GPU, float32 on the CPU. bf16: autocast on the CPU too, 2-3x faster "
        "for the plain conv nets on CPUs with native bf16 (Intel AMX), slower for the depthwise ones (MobileNet, "
        "EfficientNet, ShuffleNet). Evaluation stays float32",
    )
    blur_pool = bool(get_spec(model).ablations) and c1.checkbox(
        "Blur-pool",
        value=start.blur_pool,
        key=f"train_blur-{model}-{preset}",
        help="anti-aliased downsampling (Zhang 2019): a blur before every stride, for shift robustness",
    )
    return dict(
        epochs=int(epochs),
        batch_size=int(batch),
        lr=float(lr),
        optimizer=optimizer,
        augment=augment,
        balance=balance,
        device=device,
        precision=precision,
        time_budget_min=float(budget) or None,
        scheduler="cosine" if budget else start.scheduler,
        train_fraction=int(share) / 100,
        blur_pool=blur_pool,
    )


def _start_and_teachers(model: str, labels: str) -> dict:
    """Fine-tuning from a checkpoint of this architecture, and distillation from teachers of the same labels."""
    with st.expander("Start from a checkpoint, distil", key="train_start_from"):  # open as the form above changes
        fresh = "fresh weights"
        # Only checkpoints of this label source can share the run's classes and data fingerprint.
        usable = {cid: meta for cid, meta in checkpoints.metas().items() if meta.data.label_source == labels}
        own = [cid for cid, meta in usable.items() if meta.model == model]
        init_from = st.selectbox(
            "Start from",
            [fresh, *own],
            key=f"train_init-{model}-{labels}",
            format_func=lambda cid: cid if cid == fresh else _with_accuracy(cid, usable[cid]),
            help="continue from a trained checkpoint of this architecture (fine-tuning)",
        )
        teachers = st.multiselect(
            "Teachers",
            list(usable),
            key=f"train_teachers-{labels}",
            format_func=lambda cid: _with_accuracy(cid, usable[cid]),
            help="knowledge distillation: each face is trained towards the teachers' mean "
            "prediction mixed with its label (same classes and data as this run)",
        )
        teacher_weight = st.slider("Teachers' share of each target", 0.1, 1.0, 0.5, 0.05, key="train_teacher_weight")
    return dict(
        init_from=None if init_from == fresh else init_from,
        teachers=tuple(teachers),
        teacher_weight=float(teacher_weight),
    )


def _with_accuracy(checkpoint_id: str, meta: CheckpointMeta) -> str:
    return f"{checkpoints.name(checkpoint_id)} ({meta.accuracy:.1%})"


def _start(data_path: str, start: TrainConfig, settings: dict) -> None:
    """Start the run the form describes: `start` (a recipe's config, or the last run's) with the form's settings."""
    try:
        cfg = config_from(start, data=str(Path(data_path).expanduser()), **settings)
        job_id = start_job(cfg)
    except JobBusy as exc:  # shown by _progress while that job runs: it goes when the job ends or is cancelled
        st.session_state[BUSY_KEY] = str(exc)
        return
    except (ValueError, DataError, OSError) as exc:
        st.error(f"Cannot start: {exc}")
        return
    st.session_state["watched_job"] = job_id
    st.toast(f"Training {cfg.model} started in the background")


CANCELLING = "cancelling: it stops at its next batch (of training, validation or testing) and saves nothing"


def _stage(job: JobStatus) -> str:
    """The time left while epochs run, else the stage the job reports (teachers predicting, testing, saving)."""
    if job.cancelling:
        return CANCELLING
    eta = job.eta_s()
    return f"ETA {eta / 60:.1f} min" if job.message.startswith("epoch") and eta is not None else job.message or "starting…"


@st.fragment(run_every=2)
def status_line() -> None:
    """One line at the top of every page while a run trains: after Start the sidebar is scrolled to its form,
    away from the progress block at its top."""
    job = next((j for j in list_jobs() if j.running), None)
    if job is None:
        return
    where = _stage(job)
    st.caption(f":material/model_training: Training **{job.model}**: {job.position()}, {where} (progress and Cancel: sidebar)")


@st.fragment(run_every=2)
def _progress() -> None:
    """Polls the job files; survives refreshes and second tabs because it reads files, not session state."""
    jobs = list_jobs()
    running = [j for j in jobs if j.running]
    job = running[0] if running else (jobs[0] if jobs else None)
    if not running:
        st.session_state.pop(BUSY_KEY, None)
    elif BUSY_KEY in st.session_state:
        st.warning(st.session_state[BUSY_KEY])
    if job is None:
        return
    st.divider()
    model = job.model
    if job.running:
        b = job.batch
        st.markdown(f"**{model}** training: {job.position()}" + (f", batch {b.batch}/{b.batches}" if b else ""))
        st.progress(job.fraction_done(), text=_stage(job))
        if b:
            st.caption(f"batch loss {b.loss:.3f}" + (f" · val acc {job.epochs[-1].val_acc:.1%}" if job.epochs else ""))
        if st.button("Cancel", key=f"cancel-{job.id}", width="stretch", disabled=job.cancelling):
            cancel_job(job.id)
            st.rerun()  # the note below comes from the job's files and stays until the job ends
        if job.cancelling:
            st.info(f"Cancel asked: {CANCELLING}.")
    elif job.state == "succeeded" and job.checkpoint in {c.id for c in checkpoints.checkpoints()}:
        st.success(f"{model} finished: checkpoint {job.checkpoint}")
        st.caption("Its training curves and test metrics: **Evaluate**, One model.")
    elif job.state == "succeeded" and job.store is not None and (job.store / str(job.checkpoint)).is_dir():
        st.caption(f"{model} finished; its checkpoint {job.checkpoint} was saved to another store, {job.store}.")
    elif job.state == "succeeded":
        st.caption(f"{model} finished; its checkpoint {job.checkpoint} has since been deleted.")
    elif job.state == "cancelled":
        st.info(f"{model} was cancelled; nothing was saved.")
    else:
        st.error(f"{model} failed: {job.message}")
    # Live curves while it runs, and the curves of a run that left no checkpoint (where did it go wrong?);
    # a finished run's curves are on Evaluate, and two charts here slow every page load (bench/RESULTS.md, "The app").
    if job.epochs and job.state != "succeeded":
        learning_curves({model: job.epochs}, key="sidebar_curves", stacked_height=130)
    if job.state == "succeeded" and st.session_state.get("seen_checkpoint") != job.checkpoint:
        st.session_state["seen_checkpoint"] = job.checkpoint
        st.rerun()  # the new checkpoint changes the store signature: every page picks it up
