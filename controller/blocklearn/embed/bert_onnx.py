"""An ONNX graph of a BERT encoder with mean pooling, built from its weights with the `onnx` package.

The graph is what sentence-transformers computes for all-MiniLM-L6-v2 (BertModel, then the mean of
the token states under the attention mask), written out node by node so that no PyTorch is needed to
export it. Token type ids are always 0 for one sentence, so that embedding row is folded into the
position embeddings. Pure: numpy and onnx only; `blocklearn.embed.semantic` runs and quantises it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17  # LayerNormalization is an operator from opset 17 on


@dataclass(frozen=True)
class BertShape:
    """The parts of a Hugging Face `config.json` that shape the graph."""

    layers: int
    heads: int
    hidden: int
    layer_norm_eps: float

    @classmethod
    def from_config(cls, config: Mapping[str, object]) -> BertShape:
        if config.get("model_type") != "bert" or config.get("hidden_act") != "gelu":
            raise ValueError("only BERT encoders with exact GELU are supported")
        return cls(
            layers=int(str(config["num_hidden_layers"])),
            heads=int(str(config["num_attention_heads"])),
            hidden=int(str(config["hidden_size"])),
            layer_norm_eps=float(str(config["layer_norm_eps"])),
        )


class _Graph:
    """Collects nodes and constant initialisers under unique names."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[TensorProto] = []
        self._count = 0

    def const(self, name: str, value: npt.ArrayLike) -> str:
        self.initializers.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(self, op_type: str, *inputs: str, **attrs: Any) -> str:
        self._count += 1
        out = f"{op_type.lower()}_{self._count}"
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name=out, **attrs))
        return out

    def linear(self, x: str, weights: Mapping[str, npt.NDArray[np.float32]], prefix: str) -> str:
        """x @ W.T + b, with W stored transposed so that the quantiser sees a constant MatMul input."""
        w = self.const(f"{prefix}.weight_t", np.ascontiguousarray(weights[f"{prefix}.weight"].T))
        b = self.const(f"{prefix}.bias", weights[f"{prefix}.bias"])
        return self.op("Add", self.op("MatMul", x, w), b)

    def layer_norm(
        self, x: str, weights: Mapping[str, npt.NDArray[np.float32]], prefix: str, eps: float
    ) -> str:
        scale = self.const(f"{prefix}.weight", weights[f"{prefix}.weight"])
        bias = self.const(f"{prefix}.bias", weights[f"{prefix}.bias"])
        return self.op("LayerNormalization", x, scale, bias, axis=-1, epsilon=eps)


def build(weights: Mapping[str, npt.NDArray[np.float32]], shape: BertShape) -> onnx.ModelProto:
    """Inputs `input_ids`, `attention_mask` (int64, batch x tokens); output `embedding` (batch x hidden),
    the masked mean of the last layer's token states, not normalised."""
    g = _Graph()
    head_dim = shape.hidden // shape.heads
    eps = shape.layer_norm_eps

    # Embeddings: word + position (+ token type 0, folded in), then LayerNorm.
    word = g.const("word_embeddings", weights["embeddings.word_embeddings.weight"])
    positions = (
        weights["embeddings.position_embeddings.weight"]
        + weights["embeddings.token_type_embeddings.weight"][0]
    )
    pos = g.const("position_embeddings", positions.astype(np.float32))
    tokens = g.op("Gather", g.op("Shape", "input_ids"), g.const("one", np.array([1], dtype=np.int64)))
    zero = g.const("zero", np.array([0], dtype=np.int64))
    pos_used = g.op("Slice", pos, zero, tokens, zero)
    x = g.op("Add", g.op("Gather", word, "input_ids"), pos_used)
    x = g.layer_norm(x, weights, "embeddings.LayerNorm", eps)

    # Additive attention mask: 0 where a token is real, a large negative where it is padding.
    mask = g.op("Cast", "attention_mask", to=TensorProto.FLOAT)
    one_f = g.const("one_f", np.array(1.0, dtype=np.float32))
    neg = g.const("mask_neg", np.array(-1e4, dtype=np.float32))
    mask_bias = g.op("Mul", g.op("Sub", one_f, mask), neg)
    mask_bias = g.op("Unsqueeze", mask_bias, g.const("axes_1_2", np.array([1, 2], dtype=np.int64)))

    split_heads = g.const("split_heads", np.array([0, 0, shape.heads, head_dim], dtype=np.int64))
    merge_heads = g.const("merge_heads", np.array([0, 0, shape.hidden], dtype=np.int64))
    scale = g.const("attention_scale", np.array(1.0 / np.sqrt(head_dim), dtype=np.float32))
    sqrt2 = g.const("sqrt2", np.array(np.sqrt(2.0), dtype=np.float32))
    half = g.const("half", np.array(0.5, dtype=np.float32))

    for i in range(shape.layers):
        p = f"encoder.layer.{i}"
        q = g.op(
            "Transpose",
            g.op("Reshape", g.linear(x, weights, f"{p}.attention.self.query"), split_heads),
            perm=[0, 2, 1, 3],
        )
        k = g.op(
            "Transpose",
            g.op("Reshape", g.linear(x, weights, f"{p}.attention.self.key"), split_heads),
            perm=[0, 2, 3, 1],
        )
        v = g.op(
            "Transpose",
            g.op("Reshape", g.linear(x, weights, f"{p}.attention.self.value"), split_heads),
            perm=[0, 2, 1, 3],
        )
        scores = g.op("Add", g.op("Mul", g.op("MatMul", q, k), scale), mask_bias)
        context = g.op("MatMul", g.op("Softmax", scores, axis=-1), v)
        context = g.op("Reshape", g.op("Transpose", context, perm=[0, 2, 1, 3]), merge_heads)
        attended = g.linear(context, weights, f"{p}.attention.output.dense")
        x = g.layer_norm(g.op("Add", attended, x), weights, f"{p}.attention.output.LayerNorm", eps)
        # Exact GELU: 0.5 x (1 + erf(x / sqrt 2)); onnxruntime fuses this pattern into its Gelu kernel.
        h = g.linear(x, weights, f"{p}.intermediate.dense")
        h = g.op("Mul", g.op("Mul", h, half), g.op("Add", g.op("Erf", g.op("Div", h, sqrt2)), one_f))
        out = g.linear(h, weights, f"{p}.output.dense")
        x = g.layer_norm(g.op("Add", out, x), weights, f"{p}.output.LayerNorm", eps)

    # Mean pooling over real tokens (sentence-transformers' Pooling with pooling_mode_mean_tokens).
    mask3 = g.op("Unsqueeze", mask, g.const("axes_2", np.array([2], dtype=np.int64)))
    summed = g.op(
        "ReduceSum", g.op("Mul", x, mask3), g.const("axes_1", np.array([1], dtype=np.int64)), keepdims=0
    )
    counts = g.op(
        "Max",
        g.op("ReduceSum", mask3, "axes_1", keepdims=0),
        g.const("tiny", np.array(1e-9, dtype=np.float32)),
    )
    g.nodes.append(helper.make_node("Div", [summed, counts], ["embedding"], name="mean_pool"))

    graph = helper.make_graph(
        g.nodes,
        "bert_mean_pooling",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "tokens"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "tokens"]),
        ],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", shape.hidden])],
        g.initializers,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="blocklearn"
    )
    onnx.checker.check_model(model)
    return model
