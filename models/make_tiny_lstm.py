#!/usr/bin/env python3
"""Build models/tiny_lstm.onnx: a tiny LSTM forecaster with seeded RANDOM weights.

This is a wiring fixture for the Rust ONNX runtime (jobs/src/inference.rs), not a
trained model. It needs only numpy + onnx + onnxruntime (scripts/requirements.txt):

    .venv/bin/python models/make_tiny_lstm.py

Graph (opset 17):
    history  float32 [batch, 16, 1]
      -> Transpose(perm=[1,0,2])            [16, batch, 1]   (ONNX LSTM is time-major;
                                                              ORT's CPU LSTM rejects layout=1)
      -> LSTM(hidden_size=8), take Y_h      [1, batch, 8]
      -> Squeeze(axes=[0])                  [batch, 8]
      -> Gemm(transB=1) with head W, b      [batch, 1]
    forecast float32 [batch, 1]

The script also runs an independent numpy implementation of the ONNX LSTM equations
(gate order i, o, f, c), checks onnxruntime against it to 1e-5 and writes the inputs and
reference outputs to models/tiny_lstm.expected.json. It exits non-zero on any mismatch.
Deterministic: a fixed seed and no timestamps, so rerunning rewrites identical files.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

SEED = 20251125
STEPS = 16
FEATURES = 1
HIDDEN = 8
OPSET = 17
# IR version 8 is the one that goes with opset 17; newer onnx releases default to a newer
# IR version than some runtimes accept, so pin it.
IR_VERSION = 8
TOLERANCE = 1e-5

HERE = Path(__file__).resolve().parent
MODEL_PATH = HERE / "tiny_lstm.onnx"
EXPECTED_PATH = HERE / "tiny_lstm.expected.json"


def make_weights() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(SEED)
    scale = 0.5  # large enough that outputs differ visibly between inputs
    f32 = np.float32
    return {
        # ONNX shapes: W [dirs, 4*hidden, input], R [dirs, 4*hidden, hidden],
        # B [dirs, 8*hidden] = concat(Wb, Rb); rows are gate blocks in order i, o, f, c.
        "W": (rng.standard_normal((1, 4 * HIDDEN, FEATURES)) * scale).astype(f32),
        "R": (rng.standard_normal((1, 4 * HIDDEN, HIDDEN)) * scale).astype(f32),
        "B": (rng.standard_normal((1, 8 * HIDDEN)) * scale * 0.2).astype(f32),
        # Linear head on the last hidden state: forecast = h @ head_W.T + head_b
        "head_W": (rng.standard_normal((1, HIDDEN)) * scale).astype(f32),
        "head_b": np.array([0.5], dtype=f32),
    }


def build_model(w: dict[str, np.ndarray]) -> onnx.ModelProto:
    inits = [
        numpy_helper.from_array(w["W"], "lstm_W"),
        numpy_helper.from_array(w["R"], "lstm_R"),
        numpy_helper.from_array(w["B"], "lstm_B"),
        numpy_helper.from_array(w["head_W"], "head_W"),
        numpy_helper.from_array(w["head_b"], "head_b"),
        numpy_helper.from_array(np.array([0], dtype=np.int64), "squeeze_axes"),
    ]
    nodes = [
        helper.make_node("Transpose", ["history"], ["x_tm"], perm=[1, 0, 2], name="to_time_major"),
        # Outputs: Y (unused, left unnamed), Y_h (last hidden state).
        helper.make_node(
            "LSTM",
            ["x_tm", "lstm_W", "lstm_R", "lstm_B"],
            ["", "y_h"],
            hidden_size=HIDDEN,
            direction="forward",
            name="lstm",
        ),
        helper.make_node("Squeeze", ["y_h", "squeeze_axes"], ["h_last"], name="drop_dir"),
        helper.make_node("Gemm", ["h_last", "head_W", "head_b"], ["forecast"], transB=1, name="head"),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_lstm",
        inputs=[helper.make_tensor_value_info("history", TensorProto.FLOAT, ["batch", STEPS, FEATURES])],
        outputs=[helper.make_tensor_value_info("forecast", TensorProto.FLOAT, ["batch", 1])],
        initializer=inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="headroom/models/make_tiny_lstm.py",
        producer_version="1",
        doc_string="Wiring fixture: random weights (seed %d), NOT a trained forecaster." % SEED,
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    return model


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def reference_forward(w: dict[str, np.ndarray], history: np.ndarray) -> np.ndarray:
    """The ONNX LSTM equations (forward, default activations, no peepholes) in float64.

    it = sigmoid(Xt Wi^T + Ht-1 Ri^T + Wbi + Rbi)
    ft = sigmoid(Xt Wf^T + Ht-1 Rf^T + Wbf + Rbf)
    ct = tanh(Xt Wc^T + Ht-1 Rc^T + Wbc + Rbc)
    Ct = ft * Ct-1 + it * ct
    ot = sigmoid(Xt Wo^T + Ht-1 Ro^T + Wbo + Rbo)
    Ht = ot * tanh(Ct)
    with the 4*hidden rows of W, R, Wb, Rb laid out in gate order i, o, f, c.
    """
    W = w["W"][0].astype(np.float64)
    R = w["R"][0].astype(np.float64)
    Wb, Rb = np.split(w["B"][0].astype(np.float64), 2)
    Wi, Wo, Wf, Wc = np.split(W, 4)
    Ri, Ro, Rf, Rc = np.split(R, 4)
    Wbi, Wbo, Wbf, Wbc = np.split(Wb, 4)
    Rbi, Rbo, Rbf, Rbc = np.split(Rb, 4)

    x = history.astype(np.float64)  # [batch, steps, features]
    batch = x.shape[0]
    h = np.zeros((batch, HIDDEN))
    c = np.zeros((batch, HIDDEN))
    for t in range(x.shape[1]):
        xt = x[:, t, :]
        i = sigmoid(xt @ Wi.T + h @ Ri.T + Wbi + Rbi)
        f = sigmoid(xt @ Wf.T + h @ Rf.T + Wbf + Rbf)
        g = np.tanh(xt @ Wc.T + h @ Rc.T + Wbc + Rbc)
        c = f * c + i * g
        o = sigmoid(xt @ Wo.T + h @ Ro.T + Wbo + Rbo)
        h = o * np.tanh(c)
    return h @ w["head_W"].astype(np.float64).T + w["head_b"].astype(np.float64)


def fixed_inputs() -> dict[str, np.ndarray]:
    t = np.arange(STEPS, dtype=np.float64)
    return {
        "ramp": np.linspace(0.1, 0.9, STEPS),
        "sine": 0.5 + 0.4 * np.sin(2.0 * np.pi * t / 8.0),
        "constant": np.full(STEPS, 0.6),
    }


def main() -> int:
    weights = make_weights()
    model = build_model(weights)
    data = model.SerializeToString(deterministic=True)
    MODEL_PATH.write_bytes(data)

    cases = fixed_inputs()
    names = list(cases)
    # Round the inputs to float32 once, so numpy, onnxruntime and the Rust test see the same numbers.
    batch = np.stack([cases[n] for n in names]).astype(np.float32)[:, :, None]
    reference = reference_forward(weights, batch)  # [3, 1] float64

    import onnxruntime as ort

    session = ort.InferenceSession(str(MODEL_PATH), providers=["CPUExecutionProvider"])
    (got,) = session.run(["forecast"], {"history": batch})
    err = np.abs(got.astype(np.float64) - reference)
    print(f"onnxruntime {ort.__version__} vs numpy reference: max |diff| = {err.max():.3e}")
    for n, r, g in zip(names, reference[:, 0], got[:, 0]):
        print(f"  {n:9s} reference={r:+.7f} onnxruntime={g:+.7f}")
    if got.shape != (len(names), 1) or not np.all(err <= TOLERANCE):
        print(f"FAIL: onnxruntime output differs from the numpy LSTM reference by more than {TOLERANCE}", file=sys.stderr)
        return 1
    # Rows must not collapse to one value, or the Rust test could not tell inputs apart.
    if np.ptp(reference) < 1e-3:
        print("FAIL: outputs barely depend on the input; pick another seed", file=sys.stderr)
        return 1

    expected = {
        "model": MODEL_PATH.name,
        "model_sha256": hashlib.sha256(data).hexdigest(),
        "input": "history",
        "output": "forecast",
        "tolerance_checked": TOLERANCE,
        "cases": [
            {
                "name": n,
                "history": [float(v) for v in batch[k, :, 0]],
                "forecast": [float(v) for v in reference[k]],
            }
            for k, n in enumerate(names)
        ],
    }
    EXPECTED_PATH.write_text(json.dumps(expected, indent=2) + "\n")
    print(f"wrote {MODEL_PATH.relative_to(HERE.parent)} ({len(data)} bytes) and {EXPECTED_PATH.relative_to(HERE.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
