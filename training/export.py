"""Export a trained student to GGUF, so llama.cpp (the fast CPU path) can serve it.

Two routes, tried in order:

1. **From the GGUF it came from.** A student fine-tuned from a GGUF model (the embedded
   SmolLM2 is one) keeps that file's architecture, hyper-parameters and tokenizer; only
   the weights changed. So the export copies every metadata field of the source GGUF
   and writes the new weights under its tensor names (``gguf``'s ``TensorNameMap``),
   undoing the rotary Q/K row order that transformers' GGUF loader undid on the way in.
   Nothing beyond the ``gguf`` package is needed.
2. **llama.cpp's converter** (``convert_hf_to_gguf.py``) for any other HF model, when a
   llama.cpp checkout is named by ``$SLMKIT_LLAMA_CPP`` (the folder or the script).

Weights are written as F16 by default: quantizing to the 4-bit grid of the source would
round small fine-tuning updates back to the original weights.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Literal

from slmkit.models import existing_path
from slmkit.training.errors import TrainingError
from slmkit.training.sft import source_gguf

__all__ = ["export_gguf", "find_converter"]

Dtype = Literal["f16", "f32"]
_PERMUTED_ARCHS = {"llama"}
"""Architectures whose Q/K rows llama.cpp stores permuted (see convert_hf_to_gguf.py)."""


def find_converter() -> Path | None:
    """llama.cpp's ``convert_hf_to_gguf.py`` named by ``$SLMKIT_LLAMA_CPP``, if any."""
    env = os.environ.get("SLMKIT_LLAMA_CPP")
    if env:
        path = Path(env).expanduser()
        script = path / "convert_hf_to_gguf.py" if path.is_dir() else path
        if script.is_file():
            return script
    found = shutil.which("convert_hf_to_gguf.py")
    return Path(found) if found else None


def export_gguf(
    model_dir: str | Path,
    out: str | Path | None = None,
    *,
    dtype: Dtype = "f16",
    source: str | Path | None = None,
) -> Path:
    """Write ``model_dir`` (an HF folder, merged or LoRA) as a GGUF file; return its path.

    Args:
        model_dir: the student folder.
        out: the GGUF file (default: ``<model_dir>/model-<dtype>.gguf``).
        dtype: ``f16`` or ``f32`` weights.
        source: the GGUF the model was converted from (default: as recorded in the
            folder's ``slmkit_student.json`` or conversion marker).

    Raises:
        TrainingError: no route applies (see the hint), or the weights do not fit the
            source file's tensors.
    """
    folder = existing_path(model_dir, what="model folder", kind="folder")
    target = Path(out) if out is not None else folder / f"model-{dtype}.gguf"
    src = Path(source) if source is not None else None
    if src is None and (recorded := source_gguf(folder)) is not None:
        src = Path(recorded)
    if src is not None and src.is_file():
        return _from_source(folder, src, target, dtype)
    converter = find_converter()
    if converter is not None:
        return _with_converter(converter, folder, target, dtype)
    raise TrainingError(
        f"cannot export {folder} to GGUF: it was not converted from a GGUF file and no "
        "llama.cpp converter was found",
        hint="set SLMKIT_LLAMA_CPP to a llama.cpp checkout (it has convert_hf_to_gguf.py; "
        "pip install its requirements), or serve the student with transformers:<folder>",
    )


def _hf_weights(folder: Path) -> dict[str, Any]:
    """The folder's weights as float32 numpy arrays (LoRA adapters merged first)."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32)
    if hasattr(model, "merge_and_unload") and hasattr(model, "peft_config"):
        model = model.merge_and_unload()
    return {k: v.detach().float().cpu().numpy() for k, v in model.state_dict().items()}


def _permute(w: Any, n_head: int, n_head_kv: int | None) -> Any:
    """llama.cpp's rotary row order for Q/K (the inverse of transformers' GGUF loader)."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (
        w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
        .swapaxes(1, 2)
        .reshape(w.shape)
    )


def _field(reader: Any, key: str) -> Any:
    field = reader.get_field(key)
    return field.contents() if field is not None else None


def _from_source(folder: Path, src: Path, target: Path, dtype: Dtype) -> Path:
    import gguf
    import numpy as np

    reader = gguf.GGUFReader(str(src))
    arch = str(_field(reader, gguf.Keys.General.ARCHITECTURE))
    archs = {name: enum for enum, name in gguf.MODEL_ARCH_NAMES.items()}
    if arch not in archs:
        raise TrainingError(f"unknown GGUF architecture {arch!r} in {src}", hint="update gguf")
    n_blocks = int(_field(reader, f"{arch}.block_count"))
    n_head = int(_field(reader, f"{arch}.attention.head_count"))
    n_head_kv = _field(reader, f"{arch}.attention.head_count_kv")
    names = gguf.TensorNameMap(archs[arch], n_blocks)
    weights = _hf_weights(folder)
    by_gguf: dict[str, str] = {}
    for hf_name in weights:
        mapped = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if mapped is not None:
            by_gguf[mapped] = hf_name
    if "output.weight" not in by_gguf and "lm_head.weight" in weights:
        by_gguf["output.weight"] = "lm_head.weight"

    tmp = target.with_name(target.name + ".tmp")
    writer = gguf.GGUFWriter(str(tmp), arch)
    for field in reader.fields.values():
        if field.name == gguf.Keys.General.ARCHITECTURE or field.name.startswith("GGUF."):
            continue
        if field.name == gguf.Keys.General.FILE_TYPE:
            continue
        kind = field.types[0]
        sub = field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, field.contents(), kind, sub_type=sub)
    writer.add_file_type(
        gguf.LlamaFileType.MOSTLY_F16 if dtype == "f16" else gguf.LlamaFileType.ALL_F32
    )
    missing = [t.name for t in reader.tensors if t.name not in by_gguf]
    if missing:
        raise TrainingError(
            f"the weights in {folder} have no tensor for {missing[:3]} of {src.name}",
            hint="export only models fine-tuned from that GGUF, or use llama.cpp's converter",
        )
    for tensor in reader.tensors:
        w = weights[by_gguf[tensor.name]]
        if arch in _PERMUTED_ARCHS and ".attn_q." in tensor.name:
            w = _permute(w, n_head, n_head)
        elif arch in _PERMUTED_ARCHS and ".attn_k." in tensor.name:
            w = _permute(w, n_head, None if n_head_kv is None else int(n_head_kv))
        wide = w.ndim == 1 or dtype == "f32"  # norms stay F32, as llama.cpp writes them
        writer.add_tensor(tensor.name, w.astype(np.float32 if wide else np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    tmp.replace(target)
    return target


def _with_converter(script: Path, folder: Path, target: Path, dtype: Dtype) -> Path:
    cmd = [sys.executable, str(script), str(folder), "--outfile", str(target), "--outtype", dtype]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not target.is_file():
        raise TrainingError(
            f"llama.cpp's converter failed on {folder}: {proc.stderr.strip()[-400:]}",
            hint=f"run it by hand to see why: {' '.join(cmd)}",
        )
    return target
