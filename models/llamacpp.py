"""The llama.cpp backend (CPU default): any GGUF file, the embedded SmolLM2 included.

Decoding runs token by token in :mod:`slmkit.models._llama_engine`, so that the
llguidance :class:`~slmkit.models.guidance.TokenGate` of each row sees every sampled
token and masks the next step. ``parallel=N`` gives the context N sequences: N
concurrent calls (episodes in threads) decode together, one token each per step, each
with its own constraint, sampling and seed. Each sequence keeps its prompt prefix
cached, so agent loops (a growing history) are cheap.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from slmkit.models._llama_engine import LlamaEngine, PreparedRow
from slmkit.models.base import ChatModel, Message, Request, RowResult
from slmkit.models.batching import RowQueue
from slmkit.models.chat_format import render_template
from slmkit.models.embedded import EMBEDDED_MODELS
from slmkit.models.errors import BackendUnavailableError, GenerationError, ModelNotFoundError
from slmkit.models.guidance import GrammarCache, TokenGate, closing_bias
from slmkit.models.paths import existing_path
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
    """A GGUF model run in-process by llama-cpp-python.

    Args:
        path: the GGUF file.
        name: the model name in results (default: the file's stem).
        n_ctx: context per sequence (default: the model's, at most 8192 tokens).
        n_threads: threads of a decoding step (default: :func:`decode_threads`).
        parallel: sequences decoded together (concurrent calls); each holds a KV cache
            of ``n_ctx`` tokens.
        contexts: llama.cpp contexts the sequences are spread over, each stepped by its
            own thread (default: as many as the CPUs hold ``n_threads`` threads, at most
            ``parallel``). Separate contexts use the cores they get without llama.cpp's
            threads spin-waiting on each other, which stalls them on a busy machine.
        seed: the seed of calls that give none.
    """

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
        parallel: int = 1,
        contexts: int | None = None,
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
        if parallel < 1:
            raise ModelNotFoundError(
                f"parallel={parallel}", hint="parallel is the number of sequences, >= 1"
            )
        self.path = path
        self.name = name or path.stem
        self._seed = seed
        try:
            # The weights and the tokenizer; decoding runs in the engine's own context,
            # so this one stays minimal.
            self._llm = llama_cpp.Llama(
                model_path=str(path), n_ctx=64, n_batch=64, seed=seed, verbose=False
            )
        except (ValueError, RuntimeError) as exc:
            raise ModelNotFoundError(
                f"llama.cpp could not load {path}: {exc}",
                hint="is this a GGUF file for an architecture your llama.cpp build supports?",
            ) from exc
        vocab = llama_cpp.llama_model_get_vocab(self._llm.model)
        self._n_vocab = int(self._llm.n_vocab())
        self._lltok = llguidance.llamacpp.lltokenizer_from_vocab(vocab, n_vocab=self._n_vocab)
        meta: dict[str, Any] = dict(self._llm.metadata)
        self._template = str(meta.get("tokenizer.chat_template") or _CHATML)
        self._bos_text = self._piece(self._llm.token_bos())
        self._eos_text = self._piece(int(self._llm.token_eos()))
        self._grammars = GrammarCache(self._lltok)
        threads = n_threads or decode_threads()  # see slmkit.models.threads
        contexts = contexts or min(parallel, max(1, cpu_count() // threads))
        per_context = -(-parallel // contexts)
        self.parallel = per_context * contexts
        self._queue: RowQueue[PreparedRow] = RowQueue()
        self._engines = [
            LlamaEngine(
                self._llm,
                self._queue,
                parallel=per_context,
                n_ctx=n_ctx or default_context(path),
                threads=threads,
                # a prompt chunk uses every CPU when it has the model to itself
                batch_threads=n_threads or (cpu_count() if contexts == 1 else threads),
                name=f"{self.name}-{i}",
            )
            for i in range(contexts)
        ]

    @property
    def n_ctx(self) -> int:
        """Tokens one sequence holds: prompt and output together."""
        return self._engines[0].n_ctx

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

    def _generate_batch(self, requests: list[Request]) -> list[RowResult]:
        if self._llm is None:
            raise GenerationError(f"{self!r} was closed", hint="load the model again")
        prepared: list[PreparedRow | Exception] = []
        for req in requests:
            try:
                prepared.append(self._prepare(req))
            except Exception as exc:  # this row fails alone (over the context, bad grammar)
                prepared.append(exc)
        rows = [p for p in prepared if isinstance(p, PreparedRow)]
        answers = iter(self._queue.run(rows))
        return [p if isinstance(p, Exception) else next(answers) for p in prepared]

    def _prepare(self, req: Request) -> PreparedRow:
        """Tokens and grammar gates of ``req``, made in the caller's thread."""
        prompt = self._llm.tokenize(
            self.render(req.messages).encode("utf-8"), add_bos=False, special=True
        )
        if len(prompt) + 1 >= self.n_ctx:
            raise GenerationError(
                f"the prompt has {len(prompt)} tokens, over the context of {self.n_ctx}",
                hint="shorten the conversation or load the model with a larger n_ctx",
            )
        gates = None
        constraint = req.constraint
        if constraint is not None:
            grammar = self._grammars.get(constraint)
            json_wrap = constraint.kind == "json"
            closing = closing_bias(self._lltok, self._n_vocab) if json_wrap else None
            gates = tuple(
                TokenGate(grammar, self._lltok, self._n_vocab, closing=closing)
                for _ in range(req.sampling.n)
            )
        seed = req.sampling.seed if req.sampling.seed is not None else self._seed
        return PreparedRow(prompt=prompt, sampling=req.sampling, seed=seed, gates=gates)

    def close(self) -> None:
        queue = getattr(self, "_queue", None)
        if queue is not None:
            queue.close("the model was closed")
        for engine in getattr(self, "_engines", []):
            engine.close()
        llm = getattr(self, "_llm", None)
        if llm is not None:
            llm.close()
            self._llm = None
