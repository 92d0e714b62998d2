"""Retrieval for slmkit: documents, chunks, embeddings, FAISS + BM25 indexes, quote checks.

Build an index from files or texts, search it, and verify that a quote really occurs in
its source::

    from pathlib import Path
    from slmkit.retrieval import Index, verify_quote

    index = Index.build([Path("docs/")], path="runs/docs-index")
    passages = index.search("how do I install it?", k=5)
    match = verify_quote("pip install slmkit", passages[0].text)

Every :class:`Passage` carries character offsets into its source document, which
:meth:`Index.document` returns, so any citation can be checked against the source.

Answer with citations whose quotes are decoded under a verbatim constraint and then
verified against the source, each also scored for whether it supports its sentence
(``answer``; grounded answers copy passage sentences, so support holds by
construction), and score them (``citation_metrics``)::

    from slmkit.models import load_model
    from slmkit.retrieval import answer, citation_metrics

    ans = answer("how do I install it?", index, load_model("llamacpp:smollm2"))
    print(ans.text, [(c.marker, c.quote, c.verified, c.supports) for c in ans.citations])
    print(citation_metrics([ans]).rows())
"""

from .answering import answer
from .base import Passage, Retriever
from .checks import score_support, verify_answer
from .chunking import Chunk, ChunkingConfig, chunk_document
from .citation_grammar import REFUSAL, citation_grammar, grounded_grammar, parse_cited_output
from .cite import AnswerMode, Citation, CitedAnswer, DocumentSource
from .dense import choose_kind
from .documents import (
    SUPPORTED_SUFFIXES,
    Document,
    Section,
    as_documents,
    document_from_text,
    load_html,
    load_jsonl,
    load_markdown,
    load_path,
    load_pdf,
    load_text,
    parse_html,
    parse_markdown,
)
from .embeddings import DEFAULT_EMBEDDER, Embedder
from .errors import IndexCorruptError, RetrievalError
from .index import Index, SearchMode
from .manifest import FORMAT_VERSION, MANIFEST_NAME, DenseParams
from .metrics import CitationMetrics, SimilarityJudge, SupportJudge, citation_metrics
from .support import Support, SupportScorer
from .verify import QuoteMatch, normalize_text, verify_quote

__all__ = [
    "DEFAULT_EMBEDDER",
    "FORMAT_VERSION",
    "MANIFEST_NAME",
    "REFUSAL",
    "SUPPORTED_SUFFIXES",
    "AnswerMode",
    "Chunk",
    "ChunkingConfig",
    "Citation",
    "CitationMetrics",
    "CitedAnswer",
    "DenseParams",
    "Document",
    "DocumentSource",
    "Embedder",
    "Index",
    "IndexCorruptError",
    "Passage",
    "QuoteMatch",
    "RetrievalError",
    "Retriever",
    "SearchMode",
    "Section",
    "SimilarityJudge",
    "Support",
    "SupportJudge",
    "SupportScorer",
    "answer",
    "as_documents",
    "choose_kind",
    "chunk_document",
    "citation_grammar",
    "citation_metrics",
    "document_from_text",
    "grounded_grammar",
    "load_html",
    "load_jsonl",
    "load_markdown",
    "load_path",
    "load_pdf",
    "load_text",
    "normalize_text",
    "parse_cited_output",
    "parse_html",
    "parse_markdown",
    "score_support",
    "verify_answer",
    "verify_quote",
]
