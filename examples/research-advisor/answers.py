"""The research-advisor's logic, as plain functions (no platform calls; the agents in ``agents.py`` call these).

* :func:`passages_from_hits` — semantic-memory hits → passages ``{name, module, kind, text, score}``;
* :func:`compose_answer` — the deterministic extractive answer: 2–4 sentences from the best passages' first
  sentences, each citing its source in backticks by qualified name (``gzip.open``);
* :func:`reword_with_llm` — optional: an OpenAI-compatible ``/chat/completions`` endpoint rewords that answer from
  the same passages (``SOORMA_LLM_BASE_URL``, ``SOORMA_LLM_MODEL``, ``SOORMA_LLM_API_KEY``);
* :func:`parse_citations` / :func:`check_citations` — the validator: every cited name must have been retrieved;
* :func:`drop_unsupported` — what the planner does with a draft that fails validation.
"""

from __future__ import annotations

import os
import re
from typing import Any, Iterable, Mapping, Sequence

#: Passages the extractive answer uses at most (one sentence each).
MAX_CITED = 3
#: A passage scoring this far below the best one is not used (it answers a different question).
SCORE_WINDOW = 0.12

# A citation: a backticked Python name, dotted or not, optionally called: `gzip.open`, `json`, `re.sub()`.
_CITATION = re.compile(r"`([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)(?:\(\))?`")
# Sentence end: . ! or ? followed by whitespace and an upper-case letter, a backtick or a digit (not "e.g. foo").
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z`0-9\"'(])")
_ABBREVIATIONS = ("e.g.", "i.e.", "etc.", "a.k.a.", "vs.", "cf.")
# First words after which "Use `x` to <word> ..." does not read as an instruction.
_NOT_IMPERATIVE = {
    "a", "an", "the", "this", "these", "that", "those", "if", "when", "for", "in", "on", "like", "same", "equivalent",
    "deprecated", "new", "abstract", "base", "common", "generic", "simple", "internal", "alias", "support",
    "class", "object", "exception", "raised", "error", "warning", "mixin", "interface", "one", "each", "all",
    "it", "its", "as", "by", "with", "from", "to", "used", "helper", "utility", "utilities", "functions", "tools",
    "module", "true", "false", "none", "wrapper", "implementation", "default", "is", "was", "has",
}


# --- passages -------------------------------------------------------------------------------------------------------


def _get(item: Any, key: str, default: Any = None) -> Any:
    if isinstance(item, Mapping):
        return item.get(key, default)
    return getattr(item, key, default)


def passage_text(name: str, content: str) -> str:
    """The docstring summary of a corpus entry: its content without the leading ``"<name>: "``."""
    prefix = f"{name}: "
    return content[len(prefix):] if content.startswith(prefix) else content


def passages_from_hits(hits: Iterable[Any]) -> list[dict[str, Any]]:
    """Semantic-memory search results → ``[{name, module, kind, text, score}]``, best first, one per name."""
    passages: list[dict[str, Any]] = []
    seen: set[str] = set()
    for hit in hits:
        metadata = _get(hit, "metadata") or {}
        content = str(_get(hit, "content") or "")
        name = str(metadata.get("name") or _get(hit, "external_id") or content.split(":", 1)[0]).strip()
        if not name or name in seen:
            continue
        seen.add(name)
        score = _get(hit, "score")
        passages.append(
            {
                "name": name,
                "module": str(metadata.get("module") or name.rsplit(".", 1)[0]),
                "kind": str(metadata.get("kind") or ""),
                "text": passage_text(name, content),
                "score": round(float(score), 4) if score is not None else None,
            }
        )
    passages.sort(key=lambda p: -(p["score"] if p["score"] is not None else -1.0))
    return passages


# --- the extractive answer ------------------------------------------------------------------------------------------


def split_sentences(text: str) -> list[str]:
    """Split prose into sentences (keeps "e.g. x", "a.k.a. y" and "os.path.join" together)."""
    text = " ".join(text.split())
    if not text:
        return []
    sentences: list[str] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        piece = text[start:match.start()]
        if piece.lower().endswith(_ABBREVIATIONS):
            continue
        sentences.append(piece.strip())
        start = match.end()
    sentences.append(text[start:].strip())
    return [s for s in sentences if s]


_ARROW = re.compile(r"^(?P<sig>.{1,60}?)\s+->\s+(?P<rest>.+)$")


def prose_sentences(text: str) -> list[str]:
    """Sentences of a docstring summary without pydoc's signature notation: "str -> Construct a date from a
    string." → "Construct a date from a string."; a bare result ("od.clear() -> None.") is dropped when more
    follows."""
    out: list[str] = []
    sentences = split_sentences(text)
    for i, sentence in enumerate(sentences):
        match = _ARROW.match(sentence)
        if match:
            rest = match.group("rest").strip()
            if len(rest.split()) < 4 and i + 1 < len(sentences):
                continue
            sentence = rest[:1].upper() + rest[1:]
        out.append(sentence)
    return out


def _clean_quote(sentence: str) -> str:
    """A docstring sentence made safe to quote: no backticks (they would read as citations), ends with a period."""
    sentence = sentence.replace("``", '"').replace("`", "'").strip().rstrip(" …")
    if sentence and sentence[-1] not in ".!?":
        sentence = sentence.rstrip(":;,") + "."
    return sentence


def _lower_first(text: str) -> str:
    if len(text) > 1 and text[1].isupper():  # "URL", "SHA256": leave acronyms alone
        return text
    return text[:1].lower() + text[1:]


def cite_sentence(passage: Mapping[str, Any], sentence: str) -> str:
    """One sentence of the answer, citing ``passage`` by qualified name in backticks."""
    name, kind = passage["name"], passage.get("kind") or ""
    sentence = _clean_quote(sentence)
    words = sentence.split(" ", 1)
    first, rest = words[0], (words[1] if len(words) > 1 else "")
    first_l = first.lower().strip(",:;")
    if kind == "module":
        return f"The `{name}` module: {sentence}"
    if first_l in ("return", "returns") and rest:
        return f"`{name}` returns {rest}"
    if first_l.endswith("ly") and rest.split(" ", 1)[0].endswith("s"):
        return f"`{name}` {first_l} {rest}"  # "Repeatedly executes ..." → "`x` repeatedly executes ..."
    verb_like = first[:1].isupper() and first.isalpha() and first_l not in _NOT_IMPERATIVE and bool(rest)
    if verb_like and first_l.endswith("s") and not first_l.endswith("ss"):
        return f"`{name}` {first_l} {rest}"  # third person: "Creates ..." → "`x` creates ..."
    if verb_like:
        return f"Use `{name}` to {_lower_first(first)} {rest}"  # imperative: "Open ..." → "Use `x` to open ..."
    return f"`{name}`: {sentence}"


def pick_passages(passages: Sequence[Mapping[str, Any]], limit: int = MAX_CITED) -> list[Mapping[str, Any]]:
    """The best passages to answer from: highest scores first, within :data:`SCORE_WINDOW` of the best, skipping
    passages that say the same thing as one already picked (``random.choice`` and ``random.Random.choice``)."""
    ranked = sorted(passages, key=lambda p: -(p.get("score") if p.get("score") is not None else -1.0))
    if not ranked:
        return []
    best = ranked[0].get("score")
    picked: list[Mapping[str, Any]] = []
    said: set[str] = set()
    for passage in ranked:
        score = passage.get("score")
        if best is not None and score is not None and score < best - SCORE_WINDOW and picked:
            break
        first = prose_sentences(passage.get("text") or "")
        key = first[0].lower() if first else ""
        if not key or key in said:
            continue
        said.add(key)
        picked.append(passage)
        if len(picked) >= limit:
            break
    return picked


def compose_answer(question: str, passages: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The deterministic extractive answer: ``{"answer", "sources": [{name, module, score}], "method"}``.

    2–4 sentences: the first sentence of each picked passage (up to :data:`MAX_CITED`), each citing its source; when
    only one passage is used, its second sentence is added too. No passages → an answer that says so, no sources.
    """
    picked = pick_passages(passages)
    if not picked:
        return {
            "answer": "I found nothing in the Python standard library documentation that answers this question.",
            "sources": [],
            "method": "extractive",
        }
    sentences: list[str] = []
    for passage in picked:
        first = prose_sentences(passage.get("text") or "")
        sentences.append(cite_sentence(passage, first[0]))
    if len(sentences) == 1:
        more = prose_sentences(picked[0].get("text") or "")[1:2]
        sentences += [f"{_clean_quote(s)} (`{picked[0]['name']}`)" for s in more]
    sources = [{"name": p["name"], "module": p.get("module"), "score": p.get("score")} for p in picked]
    return {"answer": " ".join(sentences), "sources": sources, "method": "extractive"}


# --- optional LLM wording -------------------------------------------------------------------------------------------


def llm_settings(environ: Mapping[str, str] | None = None) -> dict[str, str] | None:
    """``{base_url, model, api_key}`` when ``SOORMA_LLM_BASE_URL`` is set, else ``None`` (no LLM)."""
    env = os.environ if environ is None else environ
    base_url = (env.get("SOORMA_LLM_BASE_URL") or "").strip().rstrip("/")
    if not base_url:
        return None
    return {
        "base_url": base_url,
        "model": env.get("SOORMA_LLM_MODEL") or "gpt-4o-mini",
        "api_key": env.get("SOORMA_LLM_API_KEY") or "",
    }


def llm_messages(question: str, passages: Sequence[Mapping[str, Any]], draft: str) -> list[dict[str, str]]:
    context = "\n".join(f"- `{p['name']}`: {p.get('text', '')}" for p in passages)
    return [
        {
            "role": "system",
            "content": (
                "You answer questions about the Python standard library using ONLY the passages given. "
                "Write 2 to 4 sentences. Cite every passage you use by its qualified name in backticks, exactly as "
                "given (for example `gzip.open`). Never cite or mention a name that is not in the passages, and "
                "do not put anything else in backticks."
            ),
        },
        {
            "role": "user",
            "content": f"Question: {question}\n\nPassages:\n{context}\n\nDraft answer to reword:\n{draft}",
        },
    ]


async def reword_with_llm(
    question: str,
    passages: Sequence[Mapping[str, Any]],
    draft: Mapping[str, Any],
    settings: Mapping[str, str],
    *,
    timeout: float = 20.0,
    transport: Any = None,
) -> dict[str, Any]:
    """Ask the OpenAI-compatible endpoint to reword ``draft`` from ``passages``; on any error (network, status,
    shape, or an answer that cites nothing) return ``draft`` unchanged (with ``llm_error`` saying why)."""
    import httpx

    headers = {"Authorization": f"Bearer {settings['api_key']}"} if settings.get("api_key") else {}
    body = {"model": settings["model"], "messages": llm_messages(question, passages, draft["answer"]), "temperature": 0}
    try:
        async with httpx.AsyncClient(timeout=timeout, transport=transport) as client:
            response = await client.post(f"{settings['base_url']}/chat/completions", json=body, headers=headers)
            response.raise_for_status()
            text = str(response.json()["choices"][0]["message"]["content"]).strip()
    except Exception as exc:  # noqa: BLE001 - the extractive answer is always good enough
        return {**draft, "llm_error": f"{type(exc).__name__}: {exc}"[:300]}
    cited = parse_citations(text)
    if not text or not cited:
        return {**draft, "llm_error": "the reworded answer cites no source"}
    by_name = {p["name"]: p for p in passages}
    sources = [
        {"name": n, "module": by_name[n].get("module"), "score": by_name[n].get("score")} for n in cited if n in by_name
    ]
    # Names the model cited that were not given stay in the text: the validator is there to catch them.
    return {"answer": text, "sources": sources, "method": "llm", "model": settings["model"]}


# --- validation -----------------------------------------------------------------------------------------------------


def parse_citations(text: str) -> list[str]:
    """Backticked qualified names in ``text``, in order of first appearance, each once (`re.sub()` → ``re.sub``)."""
    names: list[str] = []
    for match in _CITATION.finditer(text or ""):
        if match.group(1) not in names:
            names.append(match.group(1))
    return names


def _source_name(source: Any) -> str | None:
    name = source if isinstance(source, str) else _get(source, "name")
    return str(name) if name else None


def check_citations(answer: str, sources: Iterable[Any], retrieved: Iterable[Any]) -> dict[str, Any]:
    """The validator's verdict: ``{"valid", "cited", "unsupported", "reason"}``.

    ``cited`` = names in backticks in ``answer`` plus the declared ``sources`` (names or ``{name}`` dicts);
    ``unsupported`` = cited names that are not among ``retrieved``. Valid when at least one source is cited and
    none is unsupported (an answer that cites nothing is not grounded in anything).
    """
    cited = parse_citations(answer)
    for source in sources or ():
        name = _source_name(source)
        if name and name not in cited:
            cited.append(name)
    known = {n for n in (_source_name(r) for r in retrieved or ()) if n}
    unsupported = [n for n in cited if n not in known]
    if unsupported:
        reason = "cites sources that were not retrieved: " + ", ".join(unsupported)
    elif not cited:
        reason = "cites no source"
    else:
        reason = "every cited source was retrieved"
    return {"valid": bool(cited) and not unsupported, "cited": cited, "unsupported": unsupported, "reason": reason}


def drop_unsupported(answer: str, unsupported: Iterable[str]) -> str:
    """``answer`` without the sentences that cite an unsupported name (what the planner keeps of a failed draft)."""
    bad = set(unsupported)
    kept = [s for s in split_sentences(answer) if not bad.intersection(parse_citations(s))]
    return " ".join(kept)


# --- the planner's final answer -------------------------------------------------------------------------------------


def final_result(
    question: str,
    passages: Sequence[Mapping[str, Any]],
    draft: Mapping[str, Any],
    verdict: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """What the goal completes with: ``{"question", "answer", "sources": [{name, module, score}], "validated",
    "unsupported", "method"}`` (+ ``"note"`` when something was removed or could not be checked).

    Policy when validation fails: the sentences citing unsupported names are dropped and those names listed in
    ``unsupported``; ``validated`` stays ``false`` (it is the validator's verdict on the advisor's draft), and
    ``note`` says what happened. If no sentence survives, the answer says that no supported answer was found.
    ``sources`` only ever lists retrieved passages cited by the final answer, with their retrieval scores.
    """
    by_name = {p["name"]: p for p in passages}
    answer = str(draft.get("answer") or "")
    result: dict[str, Any] = {"question": question, "method": draft.get("method", "extractive")}
    if verdict is None:
        result.update(validated=False, unsupported=[], note="the validator did not answer; the draft is unchecked")
    else:
        unsupported = [str(n) for n in verdict.get("unsupported") or []]
        result.update(validated=bool(verdict.get("valid")), unsupported=unsupported)
        if unsupported:
            answer = drop_unsupported(answer, unsupported)
            result["note"] = (
                "removed the sentences citing sources that were not retrieved: " + ", ".join(unsupported)
            )
            if not parse_citations(answer):
                answer = "No supported answer was found in the retrieved passages."
        elif not verdict.get("valid"):
            result["note"] = str(verdict.get("reason") or "the answer cites no retrieved source")
    cited = parse_citations(answer)
    for source in draft.get("sources") or []:
        name = _source_name(source)
        if name and name not in cited and name in by_name and name in answer:
            cited.append(name)
    result["answer"] = answer
    result["sources"] = [
        {"name": n, "module": by_name[n].get("module"), "score": by_name[n].get("score")} for n in cited if n in by_name
    ]
    return result
