"""The demo in a real headless Chromium: ask, see markers, and see two facts per quote.

"verbatim" (the quote is in the source at its span) and "supports" (the quote backs its
sentence) are separate badges; an unanswerable question gets the refusal.

The server is the real app (``slmkit.apps.demo.launch``) over a real index of a few
Python reference topics and the embedded SmolLM2; Playwright drives Debian's chromium
(``make browser`` installs it). A screenshot is saved to ``test-artifacts/demo.png``.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from servers import free_port

from slmkit.apps.demo import (
    DemoConfig,
    build_demo,
    launch,
    pydoc_documents,
    render_chat,
    render_sources,
)
from slmkit.models import ChatModel
from slmkit.retrieval import ChunkingConfig, Embedder, Index, SupportScorer, verify_answer

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TOPICS = ["assert", "pass", "break", "continue", "while", "del", "nonlocal"]


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Index:
    """A few Python reference topics, in small chunks."""
    return Index.build(
        pydoc_documents(TOPICS),
        path=tmp_path_factory.mktemp("demo") / "pydoc-subset",
        embedder=Embedder(),
        chunking=ChunkingConfig(max_tokens=64, overlap=8),
    )


@pytest.fixture(scope="module")
def server(index: Index, smollm: ChatModel) -> Iterator[str]:
    port = free_port()
    demo = launch(DemoConfig(port=port, k=4), index=index, model=smollm, block=False)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


@pytest.mark.browser
def test_ask_shows_markers_and_verified_quotes(server: str, tmp_path: Path) -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed: run `make browser`")
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 950})
            # Gradio holds a connection open, so "networkidle" never comes: wait for the app.
            page.goto(server, wait_until="domcontentloaded")
            question = page.locator("#question textarea")
            question.wait_for(timeout=60_000)
            expect(page.locator("#corpus")).to_contain_text("the Python language reference")
            question.fill("What does the assert statement do?")
            page.locator("#ask").click()

            badge = page.locator("#sources .slm-badge").first
            badge.wait_for(timeout=240_000)
            chat = page.locator("#chat").inner_text()
            assert re.search(r"\[\d\]", chat), chat
            assert "quotes verbatim" in chat and "sentences supported" in chat, chat
            # Two facts, two badges per quote: the grounded answer copies its sentences,
            # so each quote is verbatim and supports the sentence it is.
            verbatim = page.locator('#sources .slm-badge[data-fact="verbatim"]')
            supports = page.locator('#sources .slm-badge[data-fact="supports"]')
            assert verbatim.count() >= 1 and verbatim.count() == supports.count()
            expect(verbatim.first).to_contain_text("verbatim")
            expect(supports.first).to_contain_text("supports its sentence")
            assert page.locator('#sources .slm-yes[data-fact="supports"]').count() >= 1
            assert page.locator("#sources .slm-context mark").count() >= 1
            page.screenshot(path=str(ARTIFACTS / "demo.png"), full_page=True)

            # Nothing in the Python reference says this: refused, with the reason.
            question.fill("What is the population of Lyon?")
            page.locator("#ask").click()
            expect(page.locator("#sources .slm-refusal")).to_contain_text(
                "no retrieved passage is about the question", timeout=120_000
            )
            expect(page.locator("#chat")).to_contain_text("The sources do not say.")
            reply = page.locator("#chat").inner_text().rsplit("population of Lyon?", 1)[-1]
            assert "The sources do not say." in reply and not re.search(r"\d{3}", reply), reply
            page.screenshot(path=str(ARTIFACTS / "demo-refusal.png"), full_page=True)

            # Free answers are the model's words: both facts are still shown, apart, for
            # the shown answer or for the draft withheld because no quote supported it.
            page.locator("#mode").get_by_text("free", exact=True).click()
            question.fill("What does the pass statement do?")
            page.locator("#ask").click()
            replied = re.compile(r"pass statement do\?[\s\S]*(verbatim in their sources|Refused)")
            expect(page.locator("#chat")).to_contain_text(replied, timeout=240_000)
            free_reply = page.locator("#chat").inner_text().rsplit("pass statement do?", 1)[-1]
            assert "Grounded answer" not in free_reply, free_reply
            assert page.locator('#sources [data-fact="supports"]').count() >= 1
            page.screenshot(path=str(ARTIFACTS / "demo-free.png"), full_page=True)

            # Upload a file: it is indexed for this session and replaces the corpus.
            note = tmp_path / "kettle.md"
            note.write_text("# Kettle\n\nThe kettle boils water in three minutes.\n")
            page.get_by_text("Index your own files").click()
            page.locator("#upload input[type=file]").set_input_files(str(note))
            page.locator("#index-files").click()
            expect(page.locator("#corpus")).to_contain_text("your 1 uploaded file", timeout=60_000)
        finally:
            browser.close()


# --- the same pieces without a browser -------------------------------------------------------


def test_sources_panel_shows_verbatim_and_supports_apart(index: Index) -> None:
    passages = index.search("What does the assert statement do?", k=3)
    number = next(i for i, p in enumerate(passages, 1) if "debugging assertions" in p.text)
    others = [n for n in range(1, len(passages) + 1) if n != number]
    ans = verify_answer(
        "q",
        f'Assert <b>statements</b> insert debugging assertions. [{number}] "insert debugging '
        f'assertions"\nAssert deletes every file on disk. [{number}] "insert debugging '
        f'assertions"\nIt is fake. [{number}] "assertions are free"',
        passages,
        documents=index,
        scorer=SupportScorer(index.embedder),
    )
    panel = render_sources(ans)
    assert "<mark>insert debugging assertions</mark>" in panel
    facts = re.findall(r'slm-badge (slm-\w+)" data-fact="(\w+)"', panel)
    assert facts.count(("slm-yes", "verbatim")) == 2 and facts.count(("slm-no", "verbatim")) == 1
    assert facts.count(("slm-yes", "supports")) == 1 and facts.count(("slm-no", "supports")) == 2
    assert "does not support its sentence" in panel and "supports nothing" in panel
    assert "Retrieved, not cited" in panel
    assert all(f"[{n}]" in panel for n in others)
    assert "<b>statements" not in panel  # answer text never reaches the panel unescaped
    chat = render_chat(ans)
    assert "2 of 3 quotes verbatim" in chat and "1 of 3 sentences supported" in chat
    assert chat.count("not supported by its quote") == 2


def _respond(demo: Any) -> Any:
    """The question handler registered on the Ask button."""
    return next(fn.fn for fn in demo.fns.values() if fn.fn and fn.fn.__name__ == "respond")


def test_question_length_is_limited_with_a_clear_message(index: Index, smollm: ChatModel) -> None:
    demo = build_demo(index, smollm, DemoConfig(max_question_chars=40))
    history, _, _, cleared = _respond(demo)("why " * 30, [], None)
    assert cleared == ""
    assert "the limit is 40" in history[-1]["content"]
