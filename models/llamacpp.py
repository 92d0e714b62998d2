"""The llama.cpp backend (CPU default): any GGUF file, the embedded SmolLM2 included.

Decoding runs token by token through ``Llama.generate`` so that the llguidance
:class:`~slmkit.models.guidance.TokenGate` sees every sampled token and masks the next
step; llama.cpp's prompt-prefix cache makes agent loops (a growing history) cheap.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from slmkit.models.base import ChatModel, Message, RawOutput, Sampling
from slmkit.models.chat_format import render_template
from slmkit.models.embedded import EMBEDDED_MODELS
from slmkit.models.errors import BackendUnavailableError, GenerationError, ModelNotFoundError
from slmkit.models.guidance import GrammarCache, TokenGate, closing_bias, closing_reserve
from slmkit.models.paths import existing_path
from slmkit.models.schema import Constraint
from slmkit.models.threads import cpu_count, decode_threads

__all__ = ["LlamaCppModel"]

_CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content']"
    " + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}"
)


_MAX_DEFAULT_CONTEXT = 8192


def default_context(path: Path) -> int:
    """The context a GGUF model gets by default: its trained length, at most 8192 tokens.

    Agent prompts are long (tau2's policy and tool list alone are 4.7k tokens), so the
    model's own length is the useful default; the cap bounds the KV cache of models
    trained on 128k tokens (``n_ctx=`` asks for more). 4096 when the file does not say.
    """
    import llama_cpp
    from llama_cpp._utils import suppress_stdout_stderr

    try:  # metadata only (no weights): about 0.1 s; llama.cpp's C log would warn on it
        with suppress_stdout_stderr(disable=False):
            llm = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
        meta = llm.metadata
    except (ValueError, RuntimeError):  # llama.cpp reports the real error on the full load
        return 4096
    for key, value in meta.items():
        if key.endswith(".context_length") and str(value).isdigit():
            return min(int(value), _MAX_DEFAULT_CONTEXT)
    return 4096


class LlamaCppModel(ChatModel):
    """A GGUF model run in-process by llama-cpp-python."""

    backend = "llamacpp"
    supports_grammar = True
    supports_logprobs = True

    def __init__(
        self,
        path: str | Path,
        *,
        name: str | None = None,
        n_ctx: int | None = None,
        n_threads: int | None = None,
        seed: int = 0,
    ) -> None:
        try:
            import llama_cpp
            import llguidance.llamacpp
        except ImportError as exc:  # pragma: no cover - base install has both
            raise BackendUnavailableError(
                "llama-cpp-python is not installed",
                hint="pip install 'llama-cpp-python[server]' llguidance",
            ) from exc
        path = existing_path(
            path,
            what="GGUF file",
            kind="file",
            hint="give a .gguf file, or an embedded model: " + ", ".join(EMBEDDED_MODELS),
        )
        self.path = path
        self.name = name or path.stem
        self._seed = seed
        self._lock = threading.Lock()  # one llama.cpp context: one generation at a time
        try:
            self._llm = llama_cpp.Llama(
                model_path=str(path),
                n_ctx=n_ctx or default_context(path),
                n_threads=n_threads or decode_threads(),  # see slmkit.models.threads
                n_threads_batch=cpu_count(),
                seed=seed,
                verbose=False,
            )
        except (ValueError, RuntimeError) as exc:
            raise ModelNotFoundError(
                f"llama.cpp could not load {path}: {exc}",
                hint="is this a GGUF file for an architecture your llama.cpp build supports?",
            ) from exc
        vocab = llama_cpp.llama_model_get_vocab(self._llm.model)
        self._n_vocab = int(self._llm.n_vocab())
        self._eos = int(self._llm.token_eos())
        self._lltok = llguidance.llamacpp.lltokenizer_from_vocab(vocab, n_vocab=self._n_vocab)
        meta: dict[str, Any] = dict(self._llm.metadata)
        self._template = str(meta.get("tokenizer.chat_template") or _CHATML)
        self._bos_text = self._piece(self._llm.token_bos())
        self._eos_text = self._piece(self._eos)
        self._grammars = GrammarCache(self._lltok)

    def _piece(self, token: int) -> str:
        if token < 0:
            return ""
        piece: bytes = self._llm.detokenize([token], special=True)
        return piece.decode("utf-8", errors="replace")

    def render(self, messages: list[Message]) -> str:
        """The prompt text the model sees for ``messages``."""
        return render_template(
            self._template, messages, bos_token=self._bos_text, eos_token=self._eos_text
        )

    def count_tokens(self, text: str) -> int:
        return len(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def _generate_batch(
        self,
        conversations: list[list[Message]],
        constraint: Constraint | None,
        sampling: Sampling,
    ) -> list[tuple[list[RawOutput], int]]:
        grammar = self._grammars.get(constraint) if constraint is not None else None
        results = []
        for messages in conversations:
            prompt = self._llm.tokenize(
                self.render(messages).encode("utf-8"), add_bos=False, special=True
            )
            if len(prompt) + 1 >= self._llm.n_ctx():
                raise GenerationError(
                    f"the prompt has {len(prompt)} tokens, over the context of {self._llm.n_ctx()}",
                    hint="shorten the conversation or load the model with a larger n_ctx",
                )
            outputs = []
            for i in range(sampling.n):
                seed = (sampling.seed if sampling.seed is not None else self._seed) + i
                outputs.append(
                    self._sample(
                        prompt,
                        grammar,
                        sampling,
                        seed,
                        wrap_up=constraint is not None and constraint.kind == "json",
                    )
                )
            results.append((outputs, len(prompt)))
        return results

    def _sample(
        self,
        prompt: list[int],
        grammar: str | None,
        sampling: Sampling,
        seed: int,
        wrap_up: bool,
    ) -> RawOutput:
        import llama_cpp

        gate = None
        if grammar is not None:
            closing = closing_bias(self._lltok, self._n_vocab) if wrap_up else None
            gate = TokenGate(grammar, self._lltok, self._n_vocab, closing=closing)
        budget = min(sampling.max_tokens, self._llm.n_ctx() - len(prompt) - 1)
        wrap_at = budget - closing_reserve(budget)
        tokens: list[int] = []
        finish = "length"
        processors = None
        if gate is not None:
            processors = llama_cpp.LogitsProcessorList(
                [lambda _ids, scores: gate.apply(scores, wrap_up=len(tokens) >= wrap_at)]
            )
        with self._lock:
            self._llm.set_seed(seed)
            stream = self._llm.generate(
                prompt,
                temp=sampling.temperature,
                top_p=sampling.top_p,
                top_k=0,
                # llama.cpp's default min-p: prunes the long tail of junk tokens that
                # high temperatures otherwise let into free-text fields.
                min_p=0.05,
                repeat_penalty=1.0,
                logits_processor=processors,
            )
            for token in stream:
                if self._llm.token_eos() == token or llama_cpp.llama_token_is_eog(
                    llama_cpp.llama_model_get_vocab(self._llm.model), token
                ):
                    finish = "stop"
                    break
                tokens.append(int(token))
                if gate is not None:
                    gate.advance(int(token))
                    if gate.stopped:
                        finish = "stop"
                        break
                if sampling.stop and self._hit_stop(tokens, sampling.stop):
                    finish = "stop"
                    break
                if len(tokens) >= budget:
                    break
        text = self._llm.detokenize(tokens).decode("utf-8", errors="replace")
        if sampling.stop:
            text = _cut_at_stop(text, sampling.stop)
        return RawOutput(
            text=text,
            completion_tokens=len(tokens),
            finish_reason=finish,
            grammar_accepted=gate.accepting if gate is not None else True,
            token_logprobs=tuple(gate.token_logprobs) if gate is not None else None,
        )

    def _hit_stop(self, tokens: list[int], stops: tuple[str, ...]) -> bool:
        tail = self._llm.detokenize(tokens[-16:]).decode("utf-8", errors="replace")
        return any(s in tail for s in stops)

    def close(self) -> None:
        llm = getattr(self, "_llm", None)
        if llm is not None:
            llm.close()
            self._llm = None


def _cut_at_stop(text: str, stops: tuple[str, ...]) -> str:
    cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=len(text))
    return text[:cut]
