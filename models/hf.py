"""The transformers backend (CPU or GPU): any HF causal LM, used for training rollouts.

Constraints go through the same llguidance engine as llama.cpp (one
:class:`~slmkit.models.guidance.TokenGate` per sequence) and the same sampler, so
outputs agree across backends. Concurrent calls are coalesced into batches
(:class:`~slmkit.models.batching.Batcher`) decoded by :mod:`slmkit.models._hf_decode`,
each row with its own constraint, sampling and seed. ``transformers:smollm2`` converts
the embedded GGUF once into an HF folder (dequantised weights, no GGUF quantizer
attached) that training can load and save.
"""

from __future__ import annotations

import contextlib
import functools
import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from slmkit.models._hf_decode import HfRow, decode_rows
from slmkit.models.base import (
    ChatModel,
    Generation,
    Message,
    RawOutput,
    Request,
    RowResult,
    TokenTrace,
)
from slmkit.models.batching import Batcher
from slmkit.models.chat_format import to_text_messages
from slmkit.models.embedded import EMBEDDED_MODELS, embedded_gguf
from slmkit.models.errors import BackendUnavailableError, GenerationError, ModelNotFoundError
from slmkit.models.guidance import GrammarCache, TokenGate, closing_bias, closing_reserve
from slmkit.models.paths import cache_dir, model_location
from slmkit.models.sampler import finish_reason
from slmkit.models.schema import Constraint
from slmkit.models.threads import decode_threads

__all__ = [
    "TransformersModel",
    "convert_embedded",
    "convert_gguf",
    "end_of_turn",
    "grammar_tokenizer",
]


def convert_embedded(alias: str = "smollm2") -> Path:
    """Convert an embedded GGUF into an HF model folder in the cache, once."""
    return convert_gguf(embedded_gguf(alias), cache_dir("models") / f"{alias}-hf")


def convert_gguf(gguf: Path, target: Path) -> Path:
    """Convert a GGUF file into an HF model folder at ``target`` (once); return it.

    Safe to call from several processes at once: a file lock serialises conversions,
    each writes its own temporary folder, and the folder appears by one atomic rename
    with a ``.complete`` marker, so a reader never sees a half-written model.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = gguf_digest(gguf)
    if _complete(target, digest):
        return target
    import fcntl

    with open(target.with_name(target.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if _complete(target, digest):  # another process converted it while we waited
            return target
        _convert(gguf, target, digest)
    return target


def gguf_digest(gguf: Path) -> str:
    """The SHA-256 of a GGUF file: what a converted folder is keyed on.

    Keyed on content, not path: the same model installed in another checkout's venv reuses
    the conversion, and a different file at the same path (a new package version) does not.
    Hashed once per process and file version (every ``transformers:smollm2`` load asks).
    """
    stat = gguf.stat()
    return _digest(str(gguf.resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _digest(path: str, size: int, mtime_ns: int) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            h.update(block)
    return h.hexdigest()


def _complete(target: Path, digest: str) -> bool:
    marker = target / ".complete"
    if not ((target / "config.json").is_file() and marker.is_file()):
        return False
    try:
        return bool(json.loads(marker.read_text()).get("sha256") == digest)
    except ValueError:  # a marker from an interrupted write or an older format
        return False


def _convert(gguf: Path, target: Path, digest: str) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # The GGUF loader attaches a quantizer; save_pretrained/training refuse it.
    model.hf_quantizer = None
    for attr in ("is_quantized", "_is_quantized_training_enabled"):
        with contextlib.suppress(AttributeError):
            setattr(model, attr, False)
    if getattr(model.config, "quantization_config", None) is not None:
        del model.config.quantization_config
    if tok.pad_token is None:  # the GGUF tokenizer has none; batching needs one
        tok.pad_token = tok.eos_token
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        _repair_byte_level_decoder(tmp / "tokenizer.json")
        (tmp / ".complete").write_text(json.dumps({"source": str(gguf), "sha256": digest}))
        tmp.chmod(0o755)  # mkdtemp made it private
        if target.exists():  # an interrupted run's folder, or one from another GGUF
            shutil.rmtree(target)
        tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _needs_byte_level_decoder(tokenizer_json: dict[str, Any]) -> bool:
    """Whether a tokenizer.json pairs a byte-level pre-tokenizer with another decoder.

    Some transformers releases (seen with 5.17) write SmolLM2's GGUF tokenizer with a
    SentencePiece-style decoder. HF's own ``decode`` hides it, but llguidance reads the
    decoder to learn each token's bytes, sees ``Ġ"`` instead of `` "``, and every grammar
    is then enforced over the wrong text: constrained outputs stop after a few tokens.
    """
    pre = tokenizer_json.get("pre_tokenizer") or {}
    parts = pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else [pre]
    byte_level = any(isinstance(p, dict) and p.get("type") == "ByteLevel" for p in parts)
    return byte_level and (tokenizer_json.get("decoder") or {}).get("type") != "ByteLevel"


def _repair_byte_level_decoder(path: Path) -> None:
    """Fix a saved tokenizer.json in place (see :func:`_needs_byte_level_decoder`)."""
    if not path.is_file():
        return
    data = json.loads(path.read_text(encoding="utf-8"))
    if _needs_byte_level_decoder(data):
        data["decoder"] = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True}
        path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")


def grammar_tokenizer(tokenizer: Any, n_vocab: int, name: str) -> Any:
    """llguidance's view of ``tokenizer``, checked to spell tokens as the tokenizer does.

    Constraints mask tokens by the bytes llguidance thinks they spell; if that view
    disagrees with the tokenizer, a "constrained" output is garbage. A byte-level
    tokenizer saved with the wrong decoder is repaired in memory; anything else that
    disagrees is refused.
    """
    import llguidance.hf

    probe = ' {"name": "set_value", "args": [1, 2.5]}\n'
    ids = tokenizer.encode(probe, add_special_tokens=False)
    backend = getattr(tokenizer, "backend_tokenizer", None)
    lltok = llguidance.hf.from_tokenizer(tokenizer, n_vocab=n_vocab)
    if bytes(lltok.decode_bytes(ids)) == probe.encode("utf-8"):
        return lltok
    if backend is not None and _needs_byte_level_decoder(json.loads(backend.to_str())):
        from tokenizers import decoders

        backend.decoder = decoders.ByteLevel()
        lltok = llguidance.hf.from_tokenizer(tokenizer, n_vocab=n_vocab)
    seen = bytes(lltok.decode_bytes(ids))
    if seen != probe.encode("utf-8"):
        raise BackendUnavailableError(
            f"{name}: llguidance reads this tokenizer's tokens as {seen[:40]!r}, not "
            f"{probe.encode()[:40]!r}; constraints cannot be enforced over it",
            hint="check the tokenizer.json's decoder and pre-tokenizer, or use another "
            "tokenizer; slmkit never decodes with a constraint it cannot enforce",
        )
    return lltok


class TransformersModel(ChatModel):
    """An HF causal LM decoded in batches under llguidance logits masking.

    Args:
        target: an HF model folder or hub id, or an embedded alias (``smollm2``).
        device: ``cuda`` or ``cpu`` (default: cuda when there is one).
        dtype: a torch dtype name (default: bfloat16 on cuda, float32 on cpu).
        model: a loaded model to use instead (a trainer's live policy).
        tokenizer: its tokenizer.
        threads: torch threads on cpu (default: :func:`decode_threads`).
        max_batch: most rows decoded together.
        batch_window_s: how long a batch waits for more concurrent calls to join.
    """

    backend = "transformers"
    supports_grammar = True
    supports_logprobs = True

    def __init__(
        self,
        target: str | Path,
        *,
        device: str | None = None,
        dtype: str | None = None,
        model: Any = None,
        tokenizer: Any = None,
        threads: int | None = None,
        max_batch: int = 64,
        batch_window_s: float = 0.005,
    ) -> None:
        try:
            import llguidance.hf  # noqa: F401  (missing: the clear error below)
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as exc:  # pragma: no cover
            raise BackendUnavailableError(
                "transformers/torch are not installed", hint="pip install transformers torch"
            ) from exc
        target = str(target)
        self.name = target
        path = convert_embedded(target) if target in EMBEDDED_MODELS else model_location(target)
        markers = ("config.json", "adapter_config.json")  # a model, or a PEFT adapter on one
        if isinstance(path, Path) and not any((path / m).is_file() for m in markers):
            gguf = path.suffix.lower() == ".gguf"  # transformers reads a GGUF via gguf_file=
            raise ModelNotFoundError(
                f"{target!r} is not a Hugging Face model folder (no config.json in it)",
                hint="run a GGUF file with llamacpp:PATH"
                if gguf
                else "give the folder save_pretrained wrote, or transformers:smollm2",
            )
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if self.device == "cpu":
            # torch's thread count is process-wide; CPU decoding is fastest with few
            # threads (see slmkit.models.threads). threads= overrides it.
            torch.set_num_threads(threads or decode_threads())
        torch_dtype = (
            getattr(torch, dtype)
            if dtype
            else (torch.bfloat16 if self.device == "cuda" else torch.float32)
        )
        try:
            self.tokenizer = tokenizer or AutoTokenizer.from_pretrained(str(path))
            self.model = model or AutoModelForCausalLM.from_pretrained(str(path), dtype=torch_dtype)
        except (OSError, ValueError) as exc:  # missing files; an unreadable tokenizer
            raise ModelNotFoundError(
                f"transformers could not load {target!r}: {exc}",
                hint="give a local HF model folder (hub ids need hub access), or "
                "transformers:smollm2 for the embedded model",
            ) from exc
        self.model.to(self.device)
        self.model.eval()
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self._vocab = int(self.model.get_output_embeddings().weight.shape[0])
        self._lltok = grammar_tokenizer(self.tokenizer, self._vocab, str(target))
        self._eos_ids = _eos_ids(self.tokenizer, self.model)
        self._grammars = GrammarCache(self._lltok)
        self._max_positions = int(getattr(self.model.config, "max_position_embeddings", 0) or 0)
        self._batcher = Batcher(
            self._decode, max_batch=max_batch, window_s=batch_window_s, name=str(target)
        )
        self.trace = False
        """Attach a :class:`~slmkit.models.TokenTrace` to every output (RL rollouts)."""
        self.prompt_tokens: Callable[[str], list[int]] | None = None
        """Tokenizes a rendered prompt instead of the tokenizer (RL rollouts reuse the
        tokens an episode already produced, so its next turn reads exactly them)."""

    @property
    def lltokenizer(self) -> Any:
        """llguidance's view of the tokenizer (what the grammar masks are computed over)."""
        return self._lltok

    @property
    def vocab_size(self) -> int:
        """Rows of the output layer: the width of every mask and logit vector."""
        return self._vocab

    @property
    def end_token(self) -> int:
        """The token that ends a turn (what a complete constrained output stands for)."""
        return self._eos_ids[0]

    def grammar(self, constraint: Constraint) -> str:
        """The compiled grammar of ``constraint`` (cached), as the sampler's gates use it."""
        return self._grammars.get(constraint)

    def render(self, messages: list[Message]) -> str:
        return str(
            self.tokenizer.apply_chat_template(
                to_text_messages(messages), tokenize=False, add_generation_prompt=True
            )
        )

    def _generate_batch(self, requests: list[Request]) -> list[RowResult]:
        return self._batcher.run(requests)

    def _decode(self, requests: list[Request]) -> list[RowResult]:
        """One batch (on the batcher's thread): every sample of every request as a row."""
        results: list[RowResult | None] = [None] * len(requests)
        rows: dict[int, list[HfRow]] = {}
        for i, req in enumerate(requests):
            try:
                rows[i] = self._rows(req)
            except Exception as exc:  # this request fails alone (over the context, ...)
                results[i] = exc
        if rows:
            decode_rows(
                self.model, self.tokenizer, [r for rs in rows.values() for r in rs], self._eos_ids
            )
        for i, samples in rows.items():
            results[i] = Generation(
                [
                    RawOutput(
                        text=r.text,
                        completion_tokens=len(r.tokens),
                        finish_reason=finish_reason(r.finish, r.looped),
                        grammar_accepted=r.gate.accepting if r.gate is not None else True,
                        token_logprobs=tuple(r.gate.token_logprobs) if r.gate else None,
                        trace=self._trace(r),
                    )
                    for r in samples
                ],
                len(samples[0].prompt),
            )
        return [r for r in results if r is not None]

    def _trace(self, row: HfRow) -> TokenTrace | None:
        """The row's exact tokens (None without a trace, or when cut at a stop string).

        A turn that ended ends on its end token: the one it picked, or, when its grammar
        completed, the end of turn it had no choice but (log-probability 0).
        """
        if row.logprobs is None:
            return None
        grammar_done = row.gate is not None and row.gate.stopped
        if row.finish == "stop" and row.end is None and not grammar_done:
            return None  # a stop string ended it: the text is cut inside the tokens
        ids, lps = list(row.tokens), list(row.logprobs[: len(row.tokens)])
        if row.end is not None:
            ids.append(row.end)
            lps.append(row.logprobs[len(row.tokens)])
        elif grammar_done:
            ids.append(self.end_token)
            lps.append(0.0)
        return TokenTrace(tuple(row.prompt), tuple(ids), tuple(lps))

    def _rows(self, req: Request) -> list[HfRow]:
        text = self.render(req.messages)
        if self.prompt_tokens is not None:
            prompt = [int(t) for t in self.prompt_tokens(text)]
        else:
            prompt = [int(t) for t in self.tokenizer(text, add_special_tokens=False)["input_ids"]]
        budget = req.sampling.max_tokens
        if self._max_positions:
            if len(prompt) + 1 >= self._max_positions:
                raise GenerationError(
                    f"the prompt has {len(prompt)} tokens, over the model's "
                    f"{self._max_positions} positions",
                    hint="shorten the conversation",
                )
            budget = min(budget, self._max_positions - len(prompt) - 1)
        grammar = self._grammars.get(req.constraint) if req.constraint is not None else None
        closing = None
        if req.constraint is not None and req.constraint.kind == "json":
            closing = closing_bias(self._lltok, self._vocab)
        seed = req.sampling.seed if req.sampling.seed is not None else 0
        return [
            HfRow(
                prompt=prompt,
                sampling=req.sampling,
                rng=np.random.default_rng(seed + j),
                budget=budget,
                wrap_at=budget - closing_reserve(budget),
                gate=TokenGate(grammar, self._lltok, self._vocab, closing=closing)
                if grammar is not None
                else None,
                logprobs=[] if self.trace else None,
            )
            for j in range(req.sampling.n)
        ]

    def close(self) -> None:
        self._batcher.close()


def end_of_turn(tokenizer: Any) -> int:
    """The token a complete turn of ``tokenizer``'s chat template ends with."""
    return _eos_ids(tokenizer, None)[0]


def _eos_ids(tokenizer: Any, model: Any) -> list[int]:
    """The tokens that end an output; the first is the chat template's end of turn.

    A converted GGUF may list ``<|im_start|>`` as EOS (transformers 5.17 does for
    SmolLM2): a turn is still ended by ``<|im_end|>`` in the text the trainer scores.
    """
    ids: set[int] = set()
    for source in (getattr(model, "generation_config", None), tokenizer):
        eos = getattr(source, "eos_token_id", None)
        if isinstance(eos, int):
            ids.add(eos)
        elif isinstance(eos, list):
            ids.update(int(e) for e in eos)
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    if isinstance(im_end, int) and im_end != getattr(tokenizer, "unk_token_id", None):
        return [im_end, *sorted(ids - {im_end})]
    eos = getattr(tokenizer, "eos_token_id", None)
    return [eos, *sorted(ids - {eos})] if isinstance(eos, int) else sorted(ids)
