"""all-MiniLM-L6-v2's single-query path in ONNX Runtime, exported from the installed weights.

Why: one short query through sentence-transformers on torch costs ~17-23 ms of CPU on these
2-core machines (torch's per-call overhead, and two intra-op threads spinning on cores shared with
the other services); the same network in ONNX Runtime with one thread costs less than half of that
(`bench/query_embedding.py`; figures in docs/performance.md). Documents keep the torch path: their
batches are compute-bound, where the two engines are close.

The graph is exported once per weights file, locally, from the torch model already loaded
(`torch.onnx.export`, which needs the `onnx` package; nothing is downloaded), with mean pooling
and L2 normalisation inside it, into `<cache dir>/all-MiniLM-L6-v2-<digest>.onnx`. The digest
covers the weights, torch's version and this module's export recipe, so a new package version or
recipe exports again instead of loading a stale graph. The file is written to a temporary name and
renamed, so a crash mid-export or two processes exporting at once leave no torn file; a cache dir
that cannot be written is not an error (the graph is kept in memory for the process). With
`precision="int8"` the fp32 graph is then quantized (`quantize`: most MatMul weights in int8, per
output channel) into a second cache file, `<name>-<QUANTIZE_RECIPE>.onnx`, the same way.

Callers may rely on: `OnnxQueryEncoder.encode` returns the unit-length vector of one text,
tokenised like sentence-transformers does (the model's fast tokenizer, truncated to the model's
`max_seq_length`, no padding) and equal to the torch path's vector to cosine >= 0.9999 (>= 0.98 in
int8; `load` checks this on probe texts and raises `OnnxMismatch` otherwise); one intra-op
thread, no spinning.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np

#: Bump when the exported graph changes (inputs, pooling, opset): old files are then ignored.
EXPORT_RECIPE = "mean-pool-l2-opset17-v1"
ONNX_OPSET = 17
#: Bump when the int8 graph's quantization changes (see `quantize`).
QUANTIZE_RECIPE = "int8-matmul-perchannel-v2"
#: The feed-forward output projection of each layer, as torch's exporter names it (kept fp32).
FFN_OUTPUT = re.compile(r"layer\.\d+/output/dense/MatMul$")
QueryPrecision = Literal["fp32", "int8"]
#: The least cosine between this path's vectors and the torch path's that `load` accepts, per
#: precision: fp32 is the same network; int8 rounds the weights (measured: >= 0.9946, mean 0.9974
#: on the 366 questions of the bench's three question sets).
MIN_COSINE: dict[QueryPrecision, float] = {"fp32": 0.9999, "int8": 0.98}
#: Probe texts for that check: a short question, an identifier-heavy one, and one past 256 pieces.
PROBES = (
    "How do I rotate the API keys of a tenant?",
    "pg_dump --format=custom vs. COPY ... TO STDOUT: which is faster for 10 GB?",
    "retrieval " * 300,
)
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


class OnnxMismatch(RuntimeError):
    """The exported graph's vectors differ from the torch model's (see `MIN_COSINE`)."""


def export_name(weights: Path, torch_version: str) -> str:
    """The cache file name for these weights, torch version and export recipe."""
    digest = hashlib.sha256()
    with weights.open("rb") as f:
        digest.update(hashlib.file_digest(f, "sha256").digest())
    digest.update(f"{torch_version}|{EXPORT_RECIPE}".encode())
    return f"all-MiniLM-L6-v2-{digest.hexdigest()[:16]}.onnx"


def _pooled(transformer: Any) -> Any:
    """A torch module: the transformer, then masked mean pooling and L2 normalisation (what
    sentence-transformers' Pooling and Normalize modules do for this model)."""
    import torch

    class Pooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            hidden = self.transformer(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, p=2.0, dim=1)

    return Pooled().eval()


def export(transformer: Any, target: Path) -> None:
    """Write the ONNX graph of `transformer` (a Hugging Face BERT module) with pooling to
    `target`; batch and sequence length are dynamic."""
    import torch

    # Two rows, one padded: the traced graph must not bake in a batch size or a full mask.
    ids = torch.tensor([[101, 2129, 2079, 1045, 102], [101, 7592, 102, 0, 0]])
    mask = (ids != 0).long()
    dynamic = {name: {0: "batch", 1: "sequence"} for name in _INPUTS} | {"embedding": {0: "batch"}}
    # The tracer warns that shapes become constants: `load` checks the graph on real texts, and a
    # warning on stderr would interleave with the service's JSON log lines.
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _pooled(transformer),
            (ids, mask, torch.zeros_like(ids)),
            str(target),
            input_names=list(_INPUTS),
            output_names=["embedding"],
            dynamic_axes=dynamic,
            opset_version=ONNX_OPSET,
            dynamo=False,  # the TorchScript exporter: no onnxscript, a plain graph
        )


def cached_graph(cache_dir: Path, name: str, transformer: Any) -> Path | bytes:
    """The exported graph: the cached file if there is one, else exported now and cached; its
    bytes when `cache_dir` cannot be written (exported through a temporary directory)."""
    return cached_file(cache_dir, name, lambda target: export(transformer, target))


def quantize(graph: Path | bytes, target: Path) -> None:
    """Write the int8 form of the fp32 `graph` to `target`: ONNX Runtime's dynamic quantization
    of the MatMul weights, per output channel, except each layer's feed-forward output projection
    (1,536 -> 384), which carries most of the rounding error (the embedding tables, layer norms
    and pooling stay fp32 too; activations are quantized per call). Measured on the bench's 366
    questions: cosine to the fp32 vectors mean 0.9974 (min 0.9946) this way, 0.9953 (0.990) with
    every MatMul, ~0.97 per tensor."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = onnx.load_from_string(graph) if isinstance(graph, bytes) else onnx.load(str(graph))
    kept = [node.name for node in model.graph.node if FFN_OUTPUT.search(node.name)]
    if not kept:  # another exporter's node names: quantizing everything would lose accuracy silently
        raise OnnxMismatch("the exported graph has no recognisable feed-forward output MatMuls to keep in fp32")
    quantize_dynamic(
        model,
        target,
        op_types_to_quantize=["MatMul"],
        per_channel=True,
        weight_type=QuantType.QInt8,
        nodes_to_exclude=kept,
    )


def cached_file(cache_dir: Path, name: str, write: Callable[[Path], None]) -> Path | bytes:
    """`cache_dir / name` if it exists, else written now by `write(target)` and kept; its bytes
    when `cache_dir` cannot be written (written through a temporary directory)."""
    path = cache_dir / name
    if path.is_file():
        return path
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=f".{name}.", suffix=".tmp")
        os.close(fd)
    except OSError:  # read-only or full: run from memory, write again at the next start
        with tempfile.TemporaryDirectory() as scratch:
            write(Path(scratch) / name)
            return (Path(scratch) / name).read_bytes()
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide it from other users of a shared cache
        os.replace(tmp, path)  # atomic: no reader ever sees a half-written graph
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


class OnnxQueryEncoder:
    """One text -> its unit vector, in ONNX Runtime (see the module docstring)."""

    def __init__(self, session: Any, tokenizer: Any) -> None:
        self._session = session
        self._tokenizer = tokenizer

    def encode(self, text: str) -> np.ndarray:
        ids = np.asarray([self._tokenizer.encode(text).ids], dtype=np.int64)
        feed = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
        vector: np.ndarray = self._session.run(None, feed)[0][0]
        return vector


def quantized_name(name: str) -> str:
    """The cache file name of the int8 form of the graph cached as `name`."""
    return f"{name.removesuffix('.onnx')}-{QUANTIZE_RECIPE}.onnx"


def load(model_dir: Path, cache_dir: Path, sentence_model: Any, precision: QueryPrecision = "fp32") -> OnnxQueryEncoder:
    """The query encoder for the loaded sentence-transformers model `sentence_model` (its weights
    in `model_dir`), exporting its graph into `cache_dir` on first use (and, for `int8`,
    quantizing it there too). Raises `OnnxMismatch` when the graph's vectors for `PROBES` are
    not the torch model's (to `MIN_COSINE[precision]`), `ImportError` when onnxruntime (or, for
    an export, onnx) is not installed."""
    import onnxruntime
    import torch
    from tokenizers import Tokenizer

    name = export_name(model_dir / "model.safetensors", torch.__version__)
    graph = cached_graph(cache_dir, name, sentence_model[0].auto_model)
    if precision == "int8":
        fp32 = graph
        name = quantized_name(name)
        graph = cached_file(cache_dir, name, lambda target: quantize(fp32, target))
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1  # one short query: a second thread only spins
    options.inter_op_num_threads = 1
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    source = str(graph) if isinstance(graph, Path) else graph
    session = onnxruntime.InferenceSession(source, options, providers=["CPUExecutionProvider"])

    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=int(sentence_model.max_seq_length))
    encoder = OnnxQueryEncoder(session, tokenizer)

    expected = sentence_model.encode(list(PROBES), normalize_embeddings=True, convert_to_numpy=True)
    worst = min(float(np.dot(encoder.encode(text), want)) for text, want in zip(PROBES, expected, strict=True))
    if worst < MIN_COSINE[precision]:
        raise OnnxMismatch(
            f"the ONNX graph {name} gives vectors at cosine {worst:.6f} to the torch model's "
            f"(at least {MIN_COSINE[precision]} needed)"
        )
    return encoder
