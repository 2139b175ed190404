"""The lean OCR graphs (clipsift.filters.ocr_graph) compute what the shipped ones compute, in fewer
operators: a small graph of every pattern (and of the places where a rewrite must not apply), the
real PP-OCRv4 detector and recogniser, and the reader's boxes and strings with either graph."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from clipsift.filters.ocr_graph import lean_model
from clipsift.filters.ocr_reader import OcrReader, _package_model

RNG = np.random.default_rng(0)


def run(model: bytes | str, x: np.ndarray) -> list[np.ndarray]:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})


def ops(model: bytes | str) -> Counter:
    m = onnx.load_from_string(model) if isinstance(model, bytes) else onnx.load(model)
    return Counter(n.op_type for n in m.graph.node if n.op_type != "Constant")


class Builder:
    """A Paddle-style graph: scalars as Constant nodes, weights as initializers (opset 12)."""

    def __init__(self):
        self.nodes, self.inits, self.k = [], [], 0

    def name(self) -> str:
        self.k += 1
        return f"t{self.k}"

    def scalar(self, v: float, shape=(1,)) -> str:
        out = self.name()
        t = numpy_helper.from_array(np.full(shape, v, np.float32))
        self.nodes.append(helper.make_node("Constant", [], [out], value=t))
        return out

    def op(self, op: str, *inputs: str, **attrs) -> str:
        out = self.name()
        self.nodes.append(helper.make_node(op, list(inputs), [out], **attrs))
        return out

    def conv(self, x: str, cin: int, cout: int, k: int, group: int = 1) -> str:
        w, b = self.name(), self.name()
        self.inits += [
            numpy_helper.from_array(
                RNG.normal(0, 0.5, (cout, cin // group, k, k)).astype(np.float32), w
            ),
            numpy_helper.from_array(RNG.normal(0, 0.5, cout).astype(np.float32), b),
        ]
        return self.op("Conv", x, w, b, kernel_shape=[k, k], pads=[k // 2] * 4, group=group)

    def affine(self, x: str, scale: float | None = None, shape=(1,)) -> str:
        """Paddle's learnable affine block: Mul(scale, x) then Add(x, bias)."""
        scale = float(RNG.uniform(0.3, 2)) if scale is None else scale
        y = self.op("Mul", self.scalar(scale, shape), x)
        return self.op("Add", y, self.scalar(float(RNG.uniform(-1, 1)), shape))

    def hardswish(self, x: str) -> str:
        clip = self.op(
            "Clip", self.op("Add", x, self.scalar(3.0)), self.scalar(0.0), self.scalar(6.0)
        )
        return self.op("Div", self.op("Mul", x, clip), self.scalar(6.0))

    def model(self, outputs: list[str], c: int, rank: int = 4) -> bytes:
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 9, 9])
        shape = [1] * (rank - 4) + [1, c, 9, 9]
        outs = [helper.make_tensor_value_info(o, TensorProto.FLOAT, shape) for o in outputs]
        g = helper.make_graph(self.nodes, "g", [x], outs, self.inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 12)])
        m.ir_version = 8
        onnx.checker.check_model(m)
        return m.SerializeToString()


def lean_bytes(tmp_path, model: bytes) -> bytes:
    path = tmp_path / "m.onnx"
    path.write_bytes(model)
    return lean_model(str(path))


def test_every_pattern_folds_and_the_outputs_stay(tmp_path):
    b = Builder()
    h = b.hardswish(b.affine(b.conv("x", 4, 8, 3)))  # rule 1 and 2
    h = b.hardswish(b.affine(b.conv(b.affine(h), 8, 8, 1)))  # rule 3 into a 1x1 conv: all of it
    y = b.conv(b.affine(h), 8, 8, 3, group=8)  # rule 3 into a padded depthwise conv: scale only
    model = b.model([y], 8)
    lean = lean_bytes(tmp_path, model)
    assert ops(model) == Counter({"Mul": 6, "Add": 6, "Conv": 3, "Clip": 2, "Div": 2})
    # what stays: the convolutions, two HardSwish, and the Add of b / s before the padded conv
    assert ops(lean) == Counter({"Conv": 3, "HardSwish": 2, "Add": 1})
    x = RNG.normal(0, 2, (1, 4, 9, 9)).astype(np.float32)
    (want,), (got,) = run(model, x), run(lean, x)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_a_value_that_another_node_also_reads_is_not_folded_away(tmp_path):
    b = Builder()
    c = b.conv("x", 4, 4, 3)
    a = b.affine(c)
    h = b.hardswish(a)
    y = b.conv(b.affine(h), 4, 4, 1)
    # the conv's raw output and the hard-swish's input are graph outputs too
    model = b.model([y, c, a], 4)
    lean = lean_bytes(tmp_path, model)
    # rule 1 kept out (the first affine block stays); rules 2 and 3 apply after it
    assert ops(lean) == Counter({"Conv": 2, "Mul": 1, "Add": 1, "HardSwish": 1})
    x = RNG.normal(0, 2, (1, 4, 9, 9)).astype(np.float32)
    for got, want in zip(run(lean, x), run(model, x), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_what_a_fold_would_change_is_left_as_it_is(tmp_path):
    """A rank-5 'scalar' broadcasts the output to rank 5, and b / s of a tiny scale does not fit
    a float32: neither block is folded, and the outputs stay."""
    b = Builder()
    y = b.affine(b.conv("x", 4, 4, 3), shape=(1, 1, 1, 1, 1))
    model = b.model([y], 4, rank=5)
    lean = lean_bytes(tmp_path, model)
    assert ops(lean) == ops(model)
    x = RNG.normal(0, 2, (1, 4, 9, 9)).astype(np.float32)
    (want,), (got,) = run(model, x), run(lean, x)
    assert got.shape == want.shape == (1, 1, 4, 9, 9)

    b = Builder()
    h = b.hardswish(b.affine(b.conv("x", 4, 4, 3)))
    y = b.conv(b.affine(h, scale=1e-39), 4, 4, 3, group=4)
    model = b.model([y], 4)
    lean = lean_bytes(tmp_path, model)
    assert ops(lean) == Counter({"Conv": 2, "HardSwish": 1, "Mul": 1, "Add": 1})
    (want,), (got,) = run(model, x), run(lean, x)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_weights_the_rewrite_replaced_are_left_out(tmp_path):
    b = Builder()
    y = b.conv(b.affine(b.hardswish(b.affine(b.conv("x", 4, 8, 3)))), 8, 8, 1)
    model = b.model([y], 8)
    m = onnx.load_from_string(lean_bytes(tmp_path, model))
    used = {i for n in m.graph.node for i in n.input}
    assert m.graph.initializer and all(i.name in used for i in m.graph.initializer)
    assert len(m.graph.initializer) == 4  # two convs' new weights and biases


def test_a_graph_without_the_patterns_keeps_its_operators(tmp_path):
    b = Builder()
    y = b.op("Relu", b.op("Mul", b.conv("x", 4, 4, 3), b.conv("x", 4, 4, 1)))
    model = b.model([y], 4)
    assert ops(lean_bytes(tmp_path, model)) == ops(model)


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    """A detector input as the reader makes it (384x256, [-1, 1]) with a line of text."""
    import cv2

    img = np.full((256, 384, 3), 90, np.uint8)
    cv2.putText(img, "EXIT 24", (60, 140), cv2.FONT_HERSHEY_DUPLEX, 1.6, (250, 250, 250), 3)
    return ((img.astype(np.float32) / 255 - 0.5) / 0.5).transpose(2, 0, 1)[None].copy()


def test_the_lean_detector_matches_rapidocrs(frame):
    shipped = str(_package_model("det"))
    lean = lean_model(shipped)
    (want,), (got,) = run(shipped, frame), run(lean, frame)
    assert want.max() > 0.9  # it sees the text
    assert np.abs(got - want).max() < 1e-4  # float rounding; the box threshold is 0.3
    before, after = ops(shipped), ops(lean)
    assert after["Clip"] == after["Div"] == 0 and after["HardSwish"] == before["Clip"]
    assert sum(after.values()) < 0.75 * sum(before.values())


def test_the_lean_recogniser_matches_rapidocrs():
    shipped = str(_package_model("rec"))
    lean = lean_model(shipped)
    x = RNG.uniform(-1, 1, (2, 3, 48, 320)).astype(np.float32)
    (want,), (got,) = run(shipped, x), run(lean, x)
    assert np.abs(got - want).max() < 1e-4
    assert (got.argmax(-1) == want.argmax(-1)).all()
    assert sum(ops(lean).values()) < 0.75 * sum(ops(shipped).values())
    # its dictionary (the model's metadata, where RapidOCR reads it) travels with it
    meta = [{p.key: p.value for p in onnx.load_from_string(m).metadata_props}
            for m in (Path(shipped).read_bytes(), lean)]  # fmt: skip
    assert meta[0] == meta[1] and "character" in meta[0]


def test_the_reader_reads_the_same_boxes_and_strings_with_either_graph():
    from test_ocr_evidence import bgr_texture, with_text

    lean, shipped = OcrReader(), OcrReader(lean_graph=False)
    images = [with_text(bgr_texture(kind, 3), "SALE ENDS FRIDAY", 18, style, None)[0]
              for kind, style in (("foliage", "subtitle"), ("stone", "sign"), ("glass", "title"))]  # fmt: skip
    images.append(bgr_texture("fractal", 5))
    found = 0
    for img in images:
        a, b = lean.read(img), shipped.read(img)
        assert [(x["box"], x["text"]) for x in a] == [(x["box"], x["text"]) for x in b]
        assert [x["conf"] for x in a] == pytest.approx([x["conf"] for x in b], abs=1e-4)
        found += any(x["text_like"] for x in a)
    assert found >= 3


def test_a_model_the_rewrite_fails_on_runs_as_shipped(monkeypatch, caplog):
    import clipsift.filters.ocr_reader as reader_mod

    def fails(path):
        raise ValueError("no such opset")

    monkeypatch.setattr(reader_mod, "_lean", fails)
    img = with_text_frame()
    with caplog.at_level("WARNING", logger="clipsift.filters.ocr_reader"):
        boxes = OcrReader().read(img)
    assert "runs as shipped" in caplog.text and "no such opset" in caplog.text
    assert any(b["text_like"] for b in boxes)


def with_text_frame() -> np.ndarray:
    from test_ocr_evidence import bgr_texture, with_text

    return with_text(bgr_texture("stone", 3), "SALE ENDS FRIDAY", 18, "sign", None)[0]


def test_lean_graphs_that_onnx_runtime_refuses_run_as_shipped(monkeypatch, caplog):
    import clipsift.filters.ocr_reader as reader_mod

    monkeypatch.setattr(reader_mod, "_lean", lambda path: b"not a model")
    with caplog.at_level("WARNING", logger="clipsift.filters.ocr_reader"):
        boxes = OcrReader().read(with_text_frame())
    assert "do not load, the models run as shipped" in caplog.text
    assert any(b["text_like"] for b in boxes)
