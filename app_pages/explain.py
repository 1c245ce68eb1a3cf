"""Explain: where each model looks (Grad-CAM, Integrated Gradients) and what its layers respond to."""

import streamlit as st

from fer_core.explain import HOW_TO_READ, METHODS, colour_scale
from fer_core.faces import PhotoError, find_faces, load_photo
from ui import charts, state

st.title("Explain")

good = state.require_checkpoints()
ids = [c.id for c in good]

source = st.radio("Face from", ["test set", "upload", "camera"], horizontal=True)
face, caption = None, ""
if source == "test set":
    path = state.default_dataset_path()
    if not path:
        st.info("FER2013 was not found (set FER_DATA); upload a photo instead.")
    else:
        data = state.dataset(path)
        c1, c2 = st.columns(2)
        cls = c1.selectbox("True class", data.classes)
        pool = data.indices("test", cls).numpy()
        n = c2.number_input(f"Face number (of {len(pool)})", 1, max(1, len(pool)), 1)
        if len(pool):
            face = data.images[pool[int(n) - 1], 0].numpy()
            caption = f"{data.names[pool[int(n) - 1]]} (true: {cls})"
else:
    file = (
        st.file_uploader("Photo", type=["png", "jpg", "jpeg", "webp", "bmp"])
        if source == "upload"
        else st.camera_input("Snapshot")
    )
    if file is not None:
        try:
            faces = find_faces(load_photo(file.getvalue()))
            face_no = st.selectbox("Face", range(1, len(faces) + 1)) if len(faces) > 1 else 1
            chosen_face = faces[face_no - 1]
            face, caption = chosen_face.face, chosen_face.note or f"face {face_no}"
        except PhotoError as exc:
            st.error(f"{file.name}: {exc}")

if face is None:
    state.end_page()

models = st.multiselect("Models", ids, default=ids[: min(4, len(ids))])
classes = list(dict.fromkeys(c for cid in models for c in state.classifier(cid).classes))
target = st.selectbox("Explain the class", ["(predicted)"] + classes)
st.image(charts.upscale(face, 144), caption=caption, width=144)
if not models:
    state.end_page()

for method_name in METHODS:
    st.subheader(method_name)
    st.caption(HOW_TO_READ[method_name])
    st.image(colour_scale(), caption="low ← colour scale → high (each map scaled to its own maximum)", width=192)
    cols = st.columns(min(4, len(models)))
    for i, cid in enumerate(models):
        clf = state.classifier(cid)
        if target != "(predicted)" and target not in clf.classes:
            cols[i % len(cols)].caption(f"{cid}: has no class {target}")
            continue
        with st.spinner(f"{method_name} for {cid}…"):
            att = state.attribution(cid, method_name, face, None if target == "(predicted)" else target)
        cols[i % len(cols)].image(
            charts.upscale(att.overlay, 192), width=192, caption=f"{cid}\n{att.target} ({att.probability:.0%})"
        )

st.subheader("Feature maps")
for cid in models:
    layers = state.feature_layers(cid)
    gradcam_layer = state.classifier(cid).spec.gradcam_layer
    layer = st.selectbox(
        f"Layer of {cid}", layers, index=layers.index(gradcam_layer) if gradcam_layer in layers else 0, key=f"layer-{cid}"
    )
    grid, (channels, height, width) = state.feature_grid(cid, face, layer)
    st.image(grid, caption=f"{cid} · {layer}: {channels} most active of its channels, {height}x{width}")
