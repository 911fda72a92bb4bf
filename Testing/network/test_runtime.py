"""The torch-free inference path: numpy resizing equal to torch's, the shortcuts of label restoring and
cleaning equal to the full computation, ONNX Runtime equal to torch on the shipped model, the graph's
checks, and a segment run that never imports torch."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import SHIPPED_MODEL as SHIPPED
from ParaspinalSegLib.geometry import DisplayTransform
from ParaspinalSegLib.network.modelfile import CARD_FILE, ModelFileError, load_model
from ParaspinalSegLib.network.postprocess import clean_labels, clean_region
from ParaspinalSegLib.network.preprocess import (Placement, class_labels, resample_antialiased, resize_weights,
                                                 restore_labels, softmax)
from ParaspinalSegLib.network.runtime import GRAPH_FILE, choose_backend

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("shape_in, shape_out", [((512, 512), (240, 240)), ((256, 250), (240, 230)),
                                                 ((100, 130), (300, 251)), ((224, 224), (512, 512)),
                                                 ((7, 9), (3, 20)), ((31, 31), (31, 31))])
def test_numpy_antialiased_resize_equals_torch(shape_in, shape_out):
    import torch
    import torch.nn.functional as F

    image = np.random.default_rng(sum(shape_in)).random((2,) + shape_in).astype(np.float32)
    expected = F.interpolate(torch.from_numpy(image)[None], size=shape_out, mode="bilinear", align_corners=False,
                             antialias=True)[0].numpy()
    np.testing.assert_allclose(resample_antialiased(image, shape_out), expected, atol=5e-5)


def test_resize_weights_rows_sum_to_one_and_identity_when_sizes_agree():
    weights = resize_weights(240, 512)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(resize_weights(17, 17), np.eye(17, dtype=np.float32))
    with pytest.raises(ValueError):
        weights[0, 0] = 2.0  # cached and shared: read-only


def full_restore(scores: np.ndarray, placement: Placement, decision: str = "flat") -> np.ndarray:
    """restore_labels without its shortcut: every class resized over the whole slice."""
    probabilities = np.zeros((scores.shape[0],) + placement.resampled_shape, dtype=np.float32)
    probabilities[0] = 1.0
    r0, c0 = placement.window_origin
    rs, re = max(r0, 0), min(r0 + placement.size, placement.resampled_shape[0])
    cs, ce = max(c0, 0), min(c0 + placement.size, placement.resampled_shape[1])
    probabilities[:, rs:re, cs:ce] = softmax(scores)[:, rs - r0 : re - r0, cs - c0 : ce - c0]
    labels = class_labels(resample_antialiased(probabilities, placement.display_shape), decision)
    return placement.transform.from_display(labels)


@pytest.mark.parametrize("decision", ["flat", "compartment_first"])
@pytest.mark.parametrize("display, resampled, origin", [((512, 512), (240, 240), (8, -5)),
                                                        ((200, 180), (240, 216), (10, -4)),
                                                        ((256, 256), (240, 240), (-20, 30))])
def test_restore_labels_shortcut_equals_the_full_resize(display, resampled, origin, decision):
    rng = np.random.default_rng(display[0])
    size = 64
    scores = np.full((5, size, size), -4.0, dtype=np.float32)
    scores[0] = 4.0
    rows, columns = np.mgrid[:size, :size]
    for label, (r, c) in zip((1, 2, 3, 4), ((20, 20), (22, 24), (40, 44), (42, 40))):
        blob = (rows - r) ** 2 + (columns - c) ** 2 < 60
        scores[label][blob] = 6.0 + rng.normal(size=blob.sum())
    scores[2, 5, 60] = 9.0  # a stray pixel far from the rest widens the region
    overlap = (scores[1] > 0) & (scores[2] > 0)
    scores[0][overlap] = np.maximum(scores[1], scores[2])[overlap] + 0.3  # background beats each class, not their sum
    placement = Placement(DisplayTransform(False, False, False), display, resampled, origin, size)
    restored = restore_labels(softmax(scores), placement, decision)
    assert set(np.unique(restored)) == {0, 1, 2, 3, 4}
    np.testing.assert_array_equal(restored, full_restore(scores, placement, decision))


def test_restore_labels_of_a_window_with_only_background_is_background():
    scores = np.zeros((5, 32, 32), dtype=np.float32)
    scores[0] = 1.0
    placement = Placement(DisplayTransform(False, False, False), (70, 60), (40, 40), (4, 4), 32)
    assert not restore_labels(softmax(scores), placement).any()


def test_cleaning_on_the_bounding_box_equals_cleaning_the_whole_slice():
    rng = np.random.default_rng(5)
    for trial in range(20):
        labels = np.zeros((90, 80), dtype=np.uint8)
        for _ in range(6):
            r, c = rng.integers(0, 90), rng.integers(0, 80)
            labels[max(r - 8, 0) : r + 8, max(c - 6, 0) : c + 6] = rng.integers(1, 5)
        labels[rng.random(labels.shape) < 0.02] = 0  # holes
        if trial % 4 == 0:
            labels[:, 0] = 1  # touching the slice's edge
        np.testing.assert_array_equal(clean_labels(labels), clean_region(labels))
    assert not clean_labels(np.zeros((5, 5), dtype=np.uint8)).any()


def test_choose_backend():
    assert choose_backend("auto", "cpu", has_graph=True) == "onnxruntime"
    assert choose_backend("auto", "cpu", has_graph=False) == "torch"
    assert choose_backend("auto", "cuda", has_graph=True) == "torch"
    assert choose_backend("torch", "cpu", has_graph=True) == "torch"
    with pytest.raises(ValueError, match="choose one of"):
        choose_backend("tensorrt", "cpu", True)


def test_groups_and_batches_of_any_size_give_the_same_labels_and_progress(monkeypatch):
    """The network's scores made a group at a time (`NETWORK_GROUP`), then labelled a batch at a time: groups
    of 5 slices in batches of 2 (a group ends on a half batch) give each slice the labels and confidence
    of one group of batches of 8, and the progress counts every slice once, up to the whole series."""
    from ParaspinalSegLib.cli import sample_folder
    from ParaspinalSegLib.network import inference
    from ParaspinalSegLib.read.reading import read_study

    series = read_study(sample_folder() / "study").series
    model = load_model(SHIPPED, backend="onnxruntime")
    whole = inference.predict_series_with_confidence(model, series)
    monkeypatch.setattr(inference, "NETWORK_GROUP", 5)
    seen = []
    grouped = inference.predict_series_with_confidence(model, series, batch_size=2,
                                                       progress=lambda fraction, message: seen.append(message))
    assert sum((labels > 0).any() for labels in whole.labels) >= len(series) - 2  # compartments to compare
    for x, y in zip(whole.labels, grouped.labels, strict=True):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_allclose(whole.confidence, grouped.confidence, rtol=1e-6)
    assert len(series) == 12 and seen == [f"segmenting, slice {k}/12" for k in (2, 4, 5, 7, 9, 10, 12)]


def test_onnx_runtime_gives_the_torch_labels_on_the_sample():
    """Both backends on the shipped sample: scores within 1e-3, and the pipeline's labels the same on
    all but a handful of border pixels (compartment Dice between them at least 0.999)."""
    from ParaspinalSegLib.cli import sample_folder
    from ParaspinalSegLib.network.inference import predict_series_with_confidence
    from ParaspinalSegLib.read.reading import read_study

    series = read_study(sample_folder() / "study").series
    by_torch = load_model(SHIPPED, backend="torch")
    by_onnx = load_model(SHIPPED, backend="onnxruntime")
    assert (by_torch.backend, by_onnx.backend, by_onnx.network) == ("torch", "onnxruntime", None)
    a = predict_series_with_confidence(by_torch, series)
    b = predict_series_with_confidence(by_onnx, series)
    for x, y in zip(a.labels, b.labels):
        overlap = np.logical_and(x > 0, y > 0).sum()
        assert 2 * overlap / ((x > 0).sum() + (y > 0).sum()) >= 0.999
        assert (x != y).mean() < 1e-3
    np.testing.assert_allclose(a.confidence, b.confidence, atol=1e-4)


def model_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(SHIPPED, folder)
    return folder


def test_a_replaced_graph_is_refused(tmp_path):
    folder = model_copy(tmp_path)
    graph = folder / GRAPH_FILE
    graph.write_bytes(graph.read_bytes()[:-10])
    with pytest.raises(ModelFileError, match="model.onnx: SHA-256 does not match"):
        load_model(folder, backend="onnxruntime")
    assert load_model(folder, backend="torch").backend == "torch"  # the weights themselves are fine


def test_a_model_without_graph_runs_on_torch_and_refuses_onnxruntime(tmp_path):
    folder = model_copy(tmp_path)
    card = json.loads((folder / CARD_FILE).read_text())
    del card["graph"]
    (folder / CARD_FILE).write_text(json.dumps(card))
    (folder / GRAPH_FILE).unlink()
    assert load_model(folder, backend="auto").backend == "torch"
    with pytest.raises(ModelFileError, match="has no ONNX graph"):
        load_model(folder, backend="onnxruntime")


def test_graph_missing_a_weight_is_a_clear_error(tmp_path):
    folder = model_copy(tmp_path)
    card = json.loads((folder / CARD_FILE).read_text())
    card["graph"]["initializers"].append("decoder.no_such.weight")
    (folder / CARD_FILE).write_text(json.dumps(card))
    with pytest.raises(ModelFileError, match="no_such"):
        load_model(folder, backend="onnxruntime")


def test_exporting_the_graph_again_gives_the_shipped_graph_and_never_replaces_one(tmp_path):
    from ParaspinalSegLib.errors import InputError
    from ParaspinalSegTrainingLib.graphexport import add_graph

    folder = model_copy(tmp_path)
    with pytest.raises(InputError, match="already has an ONNX graph"):
        add_graph(folder)
    shipped = json.loads((SHIPPED / CARD_FILE).read_text())["graph"]
    card = json.loads((folder / CARD_FILE).read_text())
    del card["graph"]
    (folder / CARD_FILE).write_text(json.dumps(card, indent=2) + "\n")
    (folder / GRAPH_FILE).unlink()
    exported = add_graph(folder).graph
    assert exported["sha256"] == shipped["sha256"] and exported["initializers"] == shipped["initializers"]
    assert (folder / GRAPH_FILE).stat().st_size < 200_000  # operators only: the weights stay in safetensors
    assert sorted(p.name for p in folder.iterdir()) == [CARD_FILE, GRAPH_FILE, "model.safetensors"]


def test_segment_on_the_cpu_never_imports_torch(tmp_path):
    """The command line's cold start: ONNX Runtime, numpy and scipy only (torch and
    segmentation-models-pytorch take about 5 s to import on a 2-core CPU)."""
    script = (
        "import sys\n"
        "from ParaspinalSegLib.cli import main, sample_folder\n"
        f"code = main(['segment', str(sample_folder() / 'study'), '-o', {str(tmp_path / 'out')!r}, '--device', 'auto'])\n"
        "heavy = sorted(m for m in ('torch', 'segmentation_models_pytorch', 'timm', 'torchvision', 'albumentations', 'scipy') if m in sys.modules)\n"
        "print('HEAVY', heavy, code)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert "HEAVY [] 0" in done.stdout, done.stdout + done.stderr
    provenance = json.loads((tmp_path / "out" / "patient.json").read_text())["provenance"]
    assert provenance["backend"] == "onnxruntime"


def test_components_and_hole_filling_equal_scipy_on_random_masks():
    """SimpleITK's components (8-connected, the largest, the first of equal ones) and hole filling
    (background 4-connected to the border stays) give scipy.ndimage's result on 300 random masks."""
    from scipy import ndimage

    from ParaspinalSegLib.network.postprocess import fill_holes, largest_component

    rng = np.random.default_rng(0)
    for trial in range(300):
        mask = rng.random((int(rng.integers(5, 60)), int(rng.integers(5, 60)))) < rng.uniform(0.3, 0.7)
        if trial % 3 == 0:
            mask = ndimage.binary_opening(mask)
        labelled, count = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
        expected = mask if count <= 1 else labelled == 1 + int(np.argmax(np.bincount(labelled.ravel())[1:]))
        np.testing.assert_array_equal(largest_component(mask), expected)
        np.testing.assert_array_equal(fill_holes(mask), ndimage.binary_fill_holes(mask))
    ring = np.zeros((9, 9), dtype=bool)
    ring[2:7, 2:7] = True
    ring[4, 4] = False
    assert fill_holes(ring).sum() == 25 and largest_component(np.zeros((4, 4), dtype=bool)).sum() == 0


def test_openvino_gives_the_torch_labels_on_the_sample():
    """OpenVINO (bfloat16 where the CPU has it) against torch float32 on the shipped sample: the
    compartment Dice between them at least 0.998 on every slice, and the provenance names it."""
    pytest.importorskip("openvino", reason="the extra paraspinalseg[openvino] is not installed")
    from ParaspinalSegLib.cli import sample_folder
    from ParaspinalSegLib.network.inference import predict_series
    from ParaspinalSegLib.pipeline import segment_series
    from ParaspinalSegLib.read.reading import read_study

    series = read_study(sample_folder() / "study").series
    by_openvino = load_model(SHIPPED, backend="openvino")
    assert by_openvino.backend in ("openvino-bf16", "openvino-f32") and by_openvino.network is None
    for x, y in zip(predict_series(load_model(SHIPPED, backend="torch"), series), predict_series(by_openvino, series)):
        assert 2 * np.logical_and(x > 0, y > 0).sum() / ((x > 0).sum() + (y > 0).sum()) >= 0.998
    assert segment_series(series, by_openvino).provenance.backend == by_openvino.backend


def test_a_model_kept_loaded_on_the_cpu_runs_on_openvino_where_it_is_installed(monkeypatch):
    from ParaspinalSegLib.network import runtime

    monkeypatch.setattr(runtime, "openvino_installed", lambda: True)
    assert runtime.choose_backend("auto", "cpu", has_graph=True, keep_loaded=True) == "openvino"
    assert runtime.choose_backend("auto", "cpu", has_graph=True) == "onnxruntime"
    assert runtime.choose_backend("auto", "cpu", has_graph=False, keep_loaded=True) == "torch"
    assert runtime.choose_backend("auto", "cuda", has_graph=True, keep_loaded=True) == "torch"
    assert runtime.choose_backend("onnxruntime", "cpu", has_graph=True, keep_loaded=True) == "onnxruntime"
    monkeypatch.setattr(runtime, "openvino_installed", lambda: False)
    assert runtime.choose_backend("auto", "cpu", has_graph=True, keep_loaded=True) == "onnxruntime"


@pytest.mark.parametrize("graph", ["model.onnx", {"file": "model.onnx"}, {"file": 3, "sha256": "x", "initializers": []},
                                   {"file": "model.onnx", "sha256": "x", "initializers": [1, 2]}])
def test_a_malformed_graph_entry_is_refused_with_the_card_named(tmp_path, graph, capsys):
    from helpers import run_cli

    folder = model_copy(tmp_path)
    card = json.loads((folder / CARD_FILE).read_text())
    card["graph"] = graph
    (folder / CARD_FILE).write_text(json.dumps(card))
    with pytest.raises(ModelFileError, match="model.json: the card's values cannot be right: graph"):
        load_model(folder, backend="auto")
    code, out, err = run_cli(capsys, "segment", ROOT / "Resources" / "Sample" / "study", "--model", folder,
                             "-o", tmp_path / "out")
    assert code == 2 and "graph" in err and "Traceback" not in out + err
