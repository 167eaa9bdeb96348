"""Faster SAM image encoders for the CPU, each a drop-in callable for :class:`SamPredictor`.

The eager float32 TinyViT spends much of its time in memory-bound work (BatchNorm, GELU, layout
copies between the token and image layouts). Two backends remove most of it without leaving
float32, so embeddings stay within ~3e-4 of the official model:

- ``onnx``: the encoder exported once to ONNX (cached under ``mvsam_home()/onnx``) and run by
  ONNX Runtime, which folds BatchNorm and fuses the element-wise ops (2.5-3.7x faster than eager
  torch on 2 cores in benchmarks/bench_sam.py).
- ``openvino``: the same ONNX file compiled by OpenVINO's CPU plugin in float32 (faster than ONNX
  Runtime on AVX-512 cores, identical masks on the parity set).
- ``openvino-bf16``: OpenVINO with bfloat16 inference precision, an explicit fast option: about
  2.5x faster again where the CPU has bf16 instructions, at a small, measured mask cost (README).
- ``openvino-mixed``: MobileSAM's trunk (every stage but the last) in float32 and its last stage and
  neck in bfloat16, two OpenVINO models. bf16's error is spread over the whole network (no single
  stage kept in float32 brings the parity set's worst mask IoU from 0.980 to 0.99), so only the
  tail, where the masks tolerate it (worst IoU 0.995), runs in bf16 (README "Encoder backends").
- ``torch-fused``: a copy of the torch encoder with BatchNorm folded into the convolutions and
  channels-last memory layout (1.2-1.6x faster, no extra dependency).

bfloat16 autocast in torch (even only in the attention stages) and int8 quantisation of ONNX
MatMuls were measured too and break parity (mask IoU 0.984; embedding error 7.8e-2), and so do
NNCF's post-training int8 quantisation for OpenVINO (transformer preset, 13 calibration images from
LLFF fern, fox and DAVIS: worst mask IoU 0.39-0.78 by calibration set, 0.86 with SmoothQuant) and
one bf16 model with chosen nodes kept in float32 by OpenVINO's ``precise`` runtime attribute
(honoured for LayerNorm, no parity gain; lost inside fused attention and MLP subgraphs; marked
convolutions fail to compile in OpenVINO 2026.4), hence ``openvino-mixed``'s two-model split.
``openvino-mixed`` stays opt-in: it keeps the parity set's masks (worst IoU 0.995) but not all
masks: on 18 held-out images x 9 clicks, 11% of SAM's candidate masks differ from float32's by more
than IoU 0.99 (worst 0.76), and a tracking test's absent frame turns into a false re-detection
(README "Encoder backends").

``auto`` picks, for MobileSAM, ``openvino`` when OpenVINO is installed, else ``onnx`` when
onnxruntime is, else ``torch-fused``; the environment variable ``MVSAM_ENCODER`` (one of
:data:`ENCODER_BACKENDS`) replaces ``auto`` for every predictor of the process. Any failure to
export or load falls back to the next backend with a logged warning.
"""

from __future__ import annotations

import copy
import inspect
import io
import logging
import os
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from mvsam.cache import atomic_write_bytes, hash_bytes, hash_file, mvsam_home
from mvsam.errors import InputError
from mvsam.sam.model import IMAGE_SIZE, LOW_RES_MASK_SIZE, Sam
from mvsam.sam.tiny_vit import ConvBN

log = logging.getLogger(__name__)

ENCODER_BACKENDS = ("auto", "torch", "torch-fused", "onnx", "openvino", "openvino-bf16", "openvino-mixed")
ENCODER_ENV = "MVSAM_ENCODER"
# Bump when the export settings change; edits to the model code change the file name by themselves.
ONNX_EXPORT_VERSION = 1
ONNX_OPSET = 17

Encoder = Callable[[torch.Tensor], torch.Tensor]  # 1x3x1024x1024 float32 -> 1x256x64x64 float32


@dataclass(frozen=True)
class EncoderBackend:
    """An image encoder and the name that keys its embeddings in the cache."""

    name: str  # e.g. "torch-fp32", "onnx-fp32-v1"
    encode: Encoder


def fold_batchnorm(encoder: nn.Module) -> nn.Module:
    """Eval-mode copy of ``encoder`` with every ConvBN replaced by one Conv2d (BN folded in)."""
    fused = copy.deepcopy(encoder).eval()
    for module in list(fused.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, ConvBN):
                setattr(module, name, fuse_conv_bn_eval(child.c, child.bn))
    for parameter in fused.parameters():
        parameter.requires_grad_(False)
    return fused


class FusedTorchEncoder:
    """BN-folded, channels-last copy of a torch encoder (same float32 math, fewer memory passes)."""

    def __init__(self, encoder: nn.Module) -> None:
        self.module = fold_batchnorm(encoder).to(memory_format=torch.channels_last)

    @torch.inference_mode()
    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.module(pixels.contiguous(memory_format=torch.channels_last)).contiguous()


def model_code_id(module: nn.Module) -> str:
    """Short hash of the source files defining ``module``'s mvsam layers: edits there re-export."""
    files = sorted(
        {inspect.getsourcefile(type(m)) for m in module.modules() if type(m).__module__.startswith("mvsam.")}
    )
    return hash_bytes(*(hash_file(f) for f in files))[:8]


def onnx_path(weights_id: str, model_type: str, module: nn.Module, part: str = "encoder") -> Path:
    """Where the export of ``module`` (the ``part`` of SAM) with these weights is cached (keyed by
    weights and code)."""
    name = f"{weights_id}-{model_type}-{part}-{model_code_id(module)}-fp32-v{ONNX_EXPORT_VERSION}.onnx"
    return mvsam_home() / "onnx" / name


def export_onnx(encoder: nn.Module, path: Path, example: torch.Tensor | None = None) -> None:
    """Export ``encoder`` (1x3x1024x1024 -> 1x256x64x64, or the shape of ``example`` in) to ONNX at
    ``path``, written atomically, with BatchNorm folded.

    Uses the TorchScript exporter, which needs no extra package and traces this model exactly
    (it has no data-dependent control flow).
    """
    buffer = io.BytesIO()
    if example is None:
        example = torch.zeros(1, 3, IMAGE_SIZE, IMAGE_SIZE)
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of the dynamo one (which needs onnxscript).
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        torch.onnx.export(
            fold_batchnorm(encoder),
            (example,),
            buffer,
            dynamo=False,
            input_names=["pixels"],
            output_names=["embedding"],
            opset_version=ONNX_OPSET,
        )
    atomic_write_bytes(path, buffer.getvalue())


def _onnxruntime_session(path: Path, threads: int | None):
    """An ONNX Runtime CPU session for the model at ``path``."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Idle worker threads would otherwise busy-wait after each call, stealing CPU from torch.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class _OpenVinoModel:
    """The model at ``path`` compiled by OpenVINO's CPU plugin ("f32" or "bf16" precision), with one
    infer request: calls from several threads take turns."""

    def __init__(self, path: Path, precision: str, threads: int | None) -> None:
        import openvino

        config = {
            "INFERENCE_PRECISION_HINT": precision,
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_NUM_THREADS": threads or torch.get_num_threads(),
            "ENABLE_CPU_PINNING": False,  # the cores are shared with torch and other processes
        }
        self.compiled = openvino.Core().compile_model(str(path), "CPU", config)
        self.request = self.compiled.create_infer_request()
        self.lock = threading.Lock()

    def infer(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        """Every output of one inference on ``inputs`` (in the model's input order), copied."""
        with self.lock:
            result = self.request.infer(dict(enumerate(inputs)))
            return [result[output].copy() for output in self.compiled.outputs]


class OnnxEncoder:
    """ONNX Runtime session for an exported encoder; called like the torch module."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        self.session = _onnxruntime_session(path, threads)
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        if tuple(pixels.shape) != (1, 3, IMAGE_SIZE, IMAGE_SIZE):
            raise ValueError(
                f"the ONNX encoder takes 1x3x{IMAGE_SIZE}x{IMAGE_SIZE} pixels, got {tuple(pixels.shape)}"
            )
        array = pixels.detach().float().contiguous().numpy()
        (embedding,) = self.session.run(None, {self.input_name: array})
        return torch.from_numpy(embedding)


class OpenVinoEncoder:
    """An exported ONNX encoder compiled by OpenVINO's CPU plugin; called like the torch module.

    ``precision`` is "f32" or "bf16" (OpenVINO's ``INFERENCE_PRECISION_HINT``). Compiling takes ~2 s
    per process; OpenVINO's own blob cache (``CACHE_DIR``) is not used: with it, a bf16 model compiled
    after an f32 one in the same cache crashed in the first inference (OpenVINO 2026.4).
    """

    def __init__(self, path: Path, precision: str, threads: int | None = None) -> None:
        self.model = _OpenVinoModel(path, precision, threads)

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        if tuple(pixels.shape) != (1, 3, IMAGE_SIZE, IMAGE_SIZE):
            raise ValueError(
                f"the OpenVINO encoder takes 1x3x{IMAGE_SIZE}x{IMAGE_SIZE} pixels, got {tuple(pixels.shape)}"
            )
        (embedding,) = self.model.infer([pixels.detach().float().contiguous().numpy()])
        return torch.from_numpy(embedding)


class _EncoderPart(nn.Module):
    """``encoder.trunk`` or ``encoder.tail`` of a TinyViT as a module's forward, for the exporter."""

    def __init__(self, encoder: nn.Module, part: str) -> None:
        super().__init__()
        self.encoder = encoder
        self.part = part

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return getattr(self.encoder, self.part)(x)


class MixedOpenVinoEncoder:
    """TinyViT's trunk compiled in float32 and its tail (last stage + neck) in bfloat16, run one after
    the other; called like the torch module.

    Measured on the parity set (``shared/reference``), worst mask IoU against the official float32
    model: all bf16 0.980; float32 kept in any one of the patch embedding, stage 0, 1, 2 or the neck
    0.971-0.981; only stage 3 + neck in bf16 0.995; stage 2's downsampling or the patch embedding in
    bf16 too 0.989 / 0.988 (``benchmarks/bench_sam.py``, README).
    """

    def __init__(self, trunk: _OpenVinoModel, tail: _OpenVinoModel) -> None:
        self.trunk = trunk
        self.tail = tail

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        if tuple(pixels.shape) != (1, 3, IMAGE_SIZE, IMAGE_SIZE):
            raise ValueError(
                f"the OpenVINO encoder takes 1x3x{IMAGE_SIZE}x{IMAGE_SIZE} pixels, got {tuple(pixels.shape)}"
            )
        (tokens,) = self.trunk.infer([pixels.detach().float().contiguous().numpy()])
        (embedding,) = self.tail.infer([tokens])
        return torch.from_numpy(embedding)


def load_mixed_encoder(encoder: nn.Module, weights_id: str, model_type: str) -> MixedOpenVinoEncoder:
    """:class:`MixedOpenVinoEncoder` for a TinyViT ``encoder``, each part exported to ONNX once (cached
    like the whole encoder's export) and compiled once per process."""
    threads = torch.get_num_threads()
    trunk_path = onnx_path(weights_id, model_type, encoder, "encoder-trunk")
    tail_path = onnx_path(weights_id, model_type, encoder, "encoder-tail")

    def export_tail() -> None:
        with torch.inference_mode():
            tokens = encoder.trunk(torch.zeros(1, 3, IMAGE_SIZE, IMAGE_SIZE))
        export_onnx(_EncoderPart(encoder, "tail"), tail_path, example=tokens)

    trunk = _cached_session(
        trunk_path,
        "openvino-f32",
        lambda: export_onnx(_EncoderPart(encoder, "trunk"), trunk_path),
        lambda: _OpenVinoModel(trunk_path, "f32", threads),
    )
    tail = _cached_session(
        tail_path, "openvino-bf16", export_tail, lambda: _OpenVinoModel(tail_path, "bf16", threads)
    )
    return MixedOpenVinoEncoder(trunk, tail)


_SESSIONS: dict[tuple[str, str, int], object] = {}  # per process, by file, runtime and threads
_SESSIONS_LOCK = threading.Lock()


def load_exported_encoder(
    encoder: nn.Module, path: Path, runtime: str = "onnxruntime", precision: str = "f32"
) -> OnnxEncoder | OpenVinoEncoder:
    """Encoder run by ``runtime`` ("onnxruntime" or "openvino") from the ONNX file at ``path``,
    exporting ``encoder`` there first when it is missing.

    A cached file that the runtime cannot read is exported again once. Sessions are shared
    within the process by file name, runtime, precision and thread count.
    """
    threads = torch.get_num_threads()

    def open_session() -> OnnxEncoder | OpenVinoEncoder:
        if runtime == "openvino":
            return OpenVinoEncoder(path, precision, threads)
        return OnnxEncoder(path, threads)

    return _cached_session(path, f"{runtime}-{precision}", lambda: export_onnx(encoder, path), open_session)


def _cached_session(path: Path, runtime: str, export: Callable[[], None], open_session: Callable):
    """The process's session for the ONNX file at ``path`` under ``runtime``: exported first when
    missing, exported again once when the runtime cannot read it."""
    key = (path.name, runtime, torch.get_num_threads())
    with _SESSIONS_LOCK:
        if key not in _SESSIONS:
            if not path.is_file():
                log.info("exporting %s (one-off, ~10-30 s)", path.name)
                export()
            try:
                session = open_session()
            except Exception:  # the runtimes raise their own exception types for a damaged file
                log.warning("cached ONNX model %s is unreadable; exporting it again", path)
                export()
                session = open_session()
            _SESSIONS[key] = session
        return _SESSIONS[key]


def onnxruntime_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def openvino_available() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def _chosen_backend(backend: str, variable: str, backends: tuple[str, ...], part: str) -> str:
    """``backend`` with ``auto`` replaced by the environment ``variable`` when that is set (and one of
    ``backends``; ``part`` names them in the error: "an encoder", "a decoder")."""
    if backend != "auto" or not os.environ.get(variable):
        return backend
    chosen = os.environ[variable].strip()
    if chosen not in backends:
        raise InputError(
            f"{variable}={chosen!r} is not {part} backend; set it to one of {', '.join(backends)} or unset it"
        )
    return chosen


def build_encoder(model: Sam, model_type: str, weights_id: str, backend: str = "auto") -> EncoderBackend:
    """The image encoder for ``backend`` (one of :data:`ENCODER_BACKENDS`).

    ``auto`` (unless ``$MVSAM_ENCODER`` says otherwise) is, for MobileSAM, ``openvino`` when
    OpenVINO is installed, else ``onnx`` when onnxruntime is, else ``torch-fused``; plain ``torch``
    for the ViT encoders, whose speed-ups are not verified. An exported backend whose runtime is
    missing or whose export fails falls back along the same order with a warning.
    """
    if backend not in ENCODER_BACKENDS:
        raise InputError(f"unknown encoder backend {backend!r}; choose one of {', '.join(ENCODER_BACKENDS)}")
    backend = _chosen_backend(backend, ENCODER_ENV, ENCODER_BACKENDS, "an encoder")
    if backend == "torch" or (backend == "auto" and model_type != "mobile_sam"):
        return EncoderBackend("torch-fp32", model.image_encoder)
    if backend == "torch-fused":
        return EncoderBackend("torch-fused-fp32", FusedTorchEncoder(model.image_encoder))
    path = onnx_path(weights_id, model_type, model.image_encoder)
    if backend == "openvino-mixed":
        if openvino_available() and hasattr(model.image_encoder, "trunk"):
            try:
                session = load_mixed_encoder(model.image_encoder, weights_id, model_type)
                return EncoderBackend(f"openvino-mixed-v{ONNX_EXPORT_VERSION}", session)
            except Exception as error:  # the exporter and OpenVINO raise many types; others still work
                log.warning("mixed OpenVINO encoder unavailable (%s); trying the next backend", error)
        else:
            log.warning("openvino-mixed needs OpenVINO and MobileSAM's TinyViT; trying the next backend")
    if backend in ("auto", "openvino", "openvino-bf16", "openvino-mixed"):
        precision = "bf16" if backend == "openvino-bf16" else "f32"
        if openvino_available():
            try:
                session = load_exported_encoder(model.image_encoder, path, "openvino", precision)
                label = "bf16" if precision == "bf16" else "fp32"
                return EncoderBackend(f"openvino-{label}-v{ONNX_EXPORT_VERSION}", session)
            except Exception as error:  # the exporter and OpenVINO raise many types; others still work
                log.warning("OpenVINO encoder unavailable (%s); trying the next backend", error)
        elif backend != "auto":
            log.warning("openvino is not installed (pip install openvino); trying ONNX Runtime")
    if onnxruntime_available():
        try:
            session = load_exported_encoder(model.image_encoder, path)
            return EncoderBackend(f"onnx-fp32-v{ONNX_EXPORT_VERSION}", session)
        except Exception as error:  # the exporter and onnxruntime raise many types; torch still works
            log.warning("ONNX encoder unavailable (%s); using the torch encoder", error)
    elif backend != "auto":
        log.warning("onnxruntime is not installed (pip install onnxruntime); using the torch encoder")
    return EncoderBackend("torch-fused-fp32", FusedTorchEncoder(model.image_encoder))


# --- mask decoder ---------------------------------------------------------------------------------
#
# A correction click re-decodes up to ~90 views, so the decoder bounds the web app's latency. Eager torch
# spends much of a pass between small ops (the mask prompt's LayerNorms, the upscaling); the exported
# graph (mask-prompt embedding + decoder) runs the same float32 math in one call.

DECODER_BACKENDS = ("auto", "torch", "onnx", "openvino", "openvino-bf16")
DECODER_ENV = "MVSAM_DECODER"
# Bx256x64x64 image embeddings, BxTx256 sparse prompt embeddings, Bx1x256x256 mask prompts or None ->
# (Bx4x256x256 low-res logits, Bx4 predicted IoU), every mask token (MaskDecoder.decode_all)
Decoder = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class DecoderBackend:
    """A mask decoder and how many prompt sets per pass it runs fastest."""

    name: str  # e.g. "torch-fp32", "openvino-fp32-v1"
    decode: Decoder
    chunk_size: int


class DecoderGraph(nn.Module):
    """Mask prompts' dense embeddings and the mask decoder, with SAM's fixed positional encoding built
    in: the graph that is exported, and itself the torch backend."""

    def __init__(self, model: Sam) -> None:
        super().__init__()
        self.prompt_encoder = model.prompt_encoder
        self.decoder = model.mask_decoder
        image_pe = model.prompt_encoder.dense_positional_encoding()
        self.register_buffer("image_pe", image_pe.detach().clone(), persistent=False)

    def forward(
        self, image_embeddings: torch.Tensor, sparse: torch.Tensor, masks: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:data:`Decoder` in eager torch (the mask path only when there are masks)."""
        dense = self.prompt_encoder.dense_embeddings(masks, image_embeddings.shape[0])
        return self.decoder.decode_all(image_embeddings, self.image_pe, sparse, dense)

    def with_mask_flags(
        self,
        image_embeddings: torch.Tensor,
        sparse: torch.Tensor,
        masks: torch.Tensor,
        has_mask: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The exported signature: ``masks`` Bx1x256x256 count where the B float ``has_mask`` > 0."""
        batch = image_embeddings.shape[0]
        dense = torch.where(
            has_mask.reshape(-1, 1, 1, 1) > 0,
            self.prompt_encoder.dense_embeddings(masks, batch),
            self.prompt_encoder.dense_embeddings(None, batch),
        )
        return self.decoder.decode_all(image_embeddings, self.image_pe, sparse, dense)


def export_decoder_onnx(graph: DecoderGraph, path: Path, single: bool = False) -> None:
    """Export a :class:`DecoderGraph` to ONNX at ``path`` (prompt-token count dynamic; the batch too,
    unless ``single``: one prompt set per call)."""
    buffer = io.BytesIO()
    batch = 1 if single else 2
    example = (
        torch.zeros(batch, 256, 64, 64),
        torch.zeros(batch, 7, 256),
        torch.zeros(batch, 1, 256, 256),
        torch.ones(batch),
    )
    batch_axis = {} if single else {0: "batch"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        torch.onnx.export(
            _ExportForward(graph).eval(),
            example,
            buffer,
            dynamo=False,
            input_names=list(EXPORTED_DECODER_INPUTS),
            output_names=["logits", "iou"],
            dynamic_axes={
                "image_embeddings": batch_axis,
                "sparse": {**batch_axis, 1: "tokens"},
                "masks": batch_axis,
                "has_mask": batch_axis,
                "logits": batch_axis,
                "iou": batch_axis,
            },
            opset_version=ONNX_OPSET,
        )
    atomic_write_bytes(path, buffer.getvalue())


EXPORTED_DECODER_INPUTS = ("image_embeddings", "sparse", "masks", "has_mask")


class _ExportForward(nn.Module):
    """:meth:`DecoderGraph.with_mask_flags` as a module's forward, for the exporter."""

    def __init__(self, graph: DecoderGraph) -> None:
        super().__init__()
        self.graph = graph

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.graph.with_mask_flags(*inputs)


class ExportedDecoder:
    """An exported :class:`DecoderGraph` run by ONNX Runtime or OpenVINO (``precision`` "f32", or "bf16"
    for OpenVINO); called like :data:`Decoder`. ``single``: the export takes one prompt set per call
    (``export_decoder_onnx(single=True)``), and a batch is decoded row by row."""

    def __init__(
        self,
        path: Path,
        runtime: str,
        threads: int | None = None,
        precision: str = "f32",
        single: bool = False,
    ) -> None:
        self.runtime = runtime
        self.single = single
        if runtime == "openvino":
            self.model = _OpenVinoModel(path, precision, threads)
        else:
            self.session = _onnxruntime_session(path, threads)

    def __call__(
        self, image_embeddings: torch.Tensor, sparse: torch.Tensor, masks: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        batch = image_embeddings.shape[0]
        if self.single and batch > 1:
            rows = [
                self(
                    image_embeddings[i : i + 1],
                    sparse[i : i + 1],
                    None if masks is None else masks[i : i + 1],
                )
                for i in range(batch)
            ]
            return torch.cat([r[0] for r in rows]), torch.cat([r[1] for r in rows])
        has_mask = np.full(batch, 0.0 if masks is None else 1.0, dtype=np.float32)
        if masks is None:
            masks = torch.zeros(batch, 1, LOW_RES_MASK_SIZE, LOW_RES_MASK_SIZE)
        arrays = [t.detach().float().contiguous().numpy() for t in (image_embeddings, sparse, masks)]
        arrays.append(has_mask)
        if self.runtime == "openvino":
            logits, iou = self.model.infer(arrays)
        else:
            logits, iou = self.session.run(None, dict(zip(EXPORTED_DECODER_INPUTS, arrays, strict=True)))
        return torch.from_numpy(logits), torch.from_numpy(iou)


def _native_bf16() -> bool:
    """Whether OpenVINO's CPU plugin runs bfloat16 natively here (AVX512-BF16 or AMX); elsewhere a bf16
    hint would only emulate it."""
    import openvino

    return "BF16" in openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def build_decoder(model: Sam, model_type: str, weights_id: str, backend: str = "torch") -> DecoderBackend:
    """The mask decoder for ``backend`` (one of :data:`DECODER_BACKENDS`).

    ``auto`` (unless ``$MVSAM_DECODER`` names another) is ``onnx`` when onnxruntime is installed, else
    ``openvino`` when OpenVINO is, else ``torch``; a runtime that is missing or fails falls back along
    the same order with a warning. These run the float32 model (mask IoU >= 0.99 against torch). On 2
    cores ONNX Runtime decoded a prompt set 1.9x faster than eager torch at load 5, 7.2x at load 25
    (OpenVINO 1.6x, 5.8x; ``benchmarks/bench_decoder.py``, README "Measured results").

    ``openvino-bf16``: OpenVINO in bfloat16 where the CPU runs it natively (float32 elsewhere), then
    ONNX Runtime, then torch, on a graph exported with a batch of one: the web app's, for click latency
    (DTU correction clicks 1.7x fewer CPU seconds than ``onnx``, same mIoU; full-size masks IoU >= 0.98
    against torch on the parity set; README "Web app").
    """
    if backend not in DECODER_BACKENDS:
        raise InputError(f"unknown decoder backend {backend!r}; choose one of {', '.join(DECODER_BACKENDS)}")
    backend = _chosen_backend(backend, DECODER_ENV, DECODER_BACKENDS, "a decoder")
    graph = DecoderGraph(model)
    torch_backend = DecoderBackend("torch-fp32", graph, chunk_size=4)
    if backend == "torch":
        return torch_backend
    # bf16: OpenVINO runs a graph with a fixed batch of one ~1.4x faster than the batch-dynamic one
    single = backend == "openvino-bf16"
    path = onnx_path(weights_id, model_type, graph, part="decoder-single" if single else "decoder")

    runtimes = {
        "auto": ("onnxruntime", "openvino"),
        "openvino": ("openvino", "onnxruntime"),
        "openvino-bf16": ("openvino", "onnxruntime"),
    }
    available = {"openvino": openvino_available, "onnxruntime": onnxruntime_available}
    for runtime in runtimes.get(backend, ("onnxruntime",)):
        if not available[runtime]():
            if backend != "auto":
                log.warning("%s is not installed; trying the next decoder backend", runtime)
            continue
        bf16 = backend == "openvino-bf16" and runtime == "openvino" and _native_bf16()
        precision = "bf16" if bf16 else "f32"
        try:
            session = _cached_session(
                path,
                f"decoder-{runtime}-{precision}",
                lambda: export_decoder_onnx(graph, path, single=single),
                lambda runtime=runtime, precision=precision: ExportedDecoder(
                    path, runtime, None, precision, single
                ),
            )
        except Exception as error:  # the exporter and the runtimes raise many types; torch still works
            log.warning("%s decoder unavailable (%s); trying the next backend", runtime, error)
            continue
        name = "openvino" if runtime == "openvino" else "onnx"
        label = "bf16" if precision == "bf16" else "fp32"
        return DecoderBackend(f"{name}-{label}-v{ONNX_EXPORT_VERSION}", session, chunk_size=1)
    return torch_backend
