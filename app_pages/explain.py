"""Explain: where each model looks (Grad-CAM, Integrated Gradients) and what its layers respond to."""

import streamlit as st

from fer_core.explain import HOW_TO_READ, METHODS, colour_scale
from fer_core.faces import PhotoError, find_faces, load_photo
from fer_core.leaderboard import ranked_checkpoints
from ui import charts, checkpoints, datasets, explanations, page

st.title("Explain")

good = page.require_checkpoints()
ids = [c.id for c in good]
MAP_PX = 192  # one attribution map on screen

SOURCES = ["test set", "upload", "camera"]
linked_face = st.query_params.get("face")  # a misclassified test face linked from Evaluate, by file name
source = st.radio("Face from", SOURCES, horizontal=True, key="explain_source")
face, caption = None, ""
if source == "test set":
    path = datasets.default_dataset_path()
    if not path:
        st.info("FER2013 was not found (set FER_DATA); upload a photo instead.")
    else:
        data = datasets.dataset(path)
        found = data.locate(linked_face) if linked_face else None
        start_class, start_n = (found[0], found[1] + 1) if found else (data.classes[0], 1)
        c1, c2 = st.columns(2)
        cls = c1.selectbox("True class", data.classes, index=list(data.classes).index(start_class))
        pool = data.indices("test", cls).numpy()
        n = c2.number_input(f"Face number (of {len(pool)})", 1, max(1, len(pool)), start_n if cls == start_class else 1)
        if len(pool):
            face = data.images[pool[int(n) - 1], 0].numpy()
            caption = f"{data.names[pool[int(n) - 1]]} (true: {cls})"
else:
    file = (
        st.file_uploader("Photo")  # any file: the decoder says why one is not an image (a type filter shows an icon only)
        if source == "upload"
        else st.camera_input("Snapshot")
    )
    if file is not None:
        try:
            rgb = load_photo(file.getvalue())
            faces = find_faces(rgb)
        except PhotoError as exc:
            st.error(f"{file.name}: {exc}")
        else:
            photo_col, pick_col = st.columns([2, 1])
            photo_col.image(charts.draw_faces(rgb, [f.box for f in faces], [f.detected for f in faces]), width="stretch")
            face_no = pick_col.radio("Face", range(1, len(faces) + 1), horizontal=True) if len(faces) > 1 else 1
            chosen_face = faces[face_no - 1]
            face, caption = chosen_face.face, chosen_face.note or f"face {face_no}"

if face is None:
    page.end_page()

linked_model = st.query_params.get("model")
ranked = ranked_checkpoints(checkpoints.metas().values())
default_models = ([linked_model] if linked_model in ids else []) + [c for c in ranked if c != linked_model]
models = st.multiselect("Models", ids, default=default_models[:4], format_func=checkpoints.name, help=checkpoints.ids_help(ids))
classes = list(dict.fromkeys(c for cid in models for c in checkpoints.classifier(cid).classes))
target = st.selectbox("Explain the class", ["(predicted)"] + classes)
st.image(charts.upscale(face, 144), caption=caption, width=144)
if not models:
    page.end_page()

for method_name in METHODS:
    st.subheader(method_name)
    st.caption(HOW_TO_READ[method_name])
    st.image(colour_scale(), caption="low ← colour scale → high (each map scaled to its own maximum)", width=MAP_PX)
    cols = st.columns(min(4, len(models)))
    for i, cid in enumerate(models):
        cell = cols[i % len(cols)]
        if target != "(predicted)" and target not in checkpoints.classifier(cid).classes:
            cell.image(charts.blank(MAP_PX), width=MAP_PX, caption=f"{checkpoints.name(cid)}\nhas no class {target}")
            continue
        with st.spinner(f"{method_name} for {checkpoints.name(cid)}…"):
            att = explanations.attribution(cid, method_name, face, None if target == "(predicted)" else target)
        cell.image(
            charts.upscale(att.overlay, MAP_PX),
            width=MAP_PX,
            caption=f"{checkpoints.name(cid)}\n{att.target} ({att.probability:.0%})",
        )
        if att.scant():
            cell.caption(
                f"Empty: nothing in this face raises {att.target}'s score at Grad-CAM's layer."
                if att.support == 0
                else f"Mostly empty: only {att.support:.0%} of the face raises {att.target}'s score, and those specks "
                "fill the colour scale. The model finds little for this class here; the map is not where it looks."
            )

st.subheader("Feature maps")
model_col, layer_col = st.columns(2)
cid = model_col.selectbox("Model", models, format_func=checkpoints.name, key="feature_model", help=checkpoints.ids_help(models))
layers = explanations.feature_layers(cid)
gradcam_layer = checkpoints.classifier(cid).spec.gradcam_layer
default_layer = layers.index(gradcam_layer) if gradcam_layer in layers else 0
layer = layer_col.selectbox("Layer", layers, index=default_layer, key=f"layer-{cid}", help="Grad-CAM's layer by default")
grid, (channels, height, width) = explanations.feature_grid(cid, face, layer)
st.image(
    grid, caption=f"{checkpoints.name(cid)} · {layer}: the {channels} most active channels, {height}x{width} each", width=420
)
