"""The research-advisor's answer composer, citation parser and validator, on plain inputs."""

from __future__ import annotations

import json

import httpx
import pytest


def _p(name, text, score, kind="function", module=None):
    return {"name": name, "module": module or name.rsplit(".", 1)[0], "kind": kind, "text": text, "score": score}


GZIP = [
    _p("gzip.open", "Open a gzip-compressed file in binary or text mode. The filename argument can be a file name.", 0.83),
    _p("gzip.decompress", "Decompress a gzip compressed string in one shot. Return the decompressed string.", 0.75),
    _p("gzip", "Functions that read and write gzipped files. The user of the file doesn't have to worry.", 0.71, "module", "gzip"),
    _p("bz2.open", "Open a bzip2-compressed file in binary or text mode.", 0.69),
    _p("zlib.compress", "Returns a bytes object containing compressed data.", 0.50),
]


# --- passages ---------------------------------------------------------------------------------------------------------


def test_passages_from_hits_reads_memory_results(research_advisor):
    hits = [
        {"id": "1", "content": "gzip.decompress: Decompress a gzip compressed string.", "external_id": "gzip.decompress",
         "metadata": {"name": "gzip.decompress", "module": "gzip", "kind": "function"}, "score": 0.7512345},
        {"id": "2", "content": "gzip.open: Open a gzip-compressed file.", "external_id": "gzip.open",
         "metadata": {"name": "gzip.open", "module": "gzip", "kind": "function"}, "score": 0.83},
        {"id": "3", "content": "gzip.open: a duplicate", "external_id": "gzip.open", "metadata": {}, "score": 0.1},
        {"id": "4", "content": "json.loads: Deserialize s.", "external_id": None, "metadata": {}, "score": 0.2},
    ]
    passages = research_advisor.answers.passages_from_hits(hits)
    assert passages == [
        {"name": "gzip.open", "module": "gzip", "kind": "function", "text": "Open a gzip-compressed file.", "score": 0.83},
        {"name": "gzip.decompress", "module": "gzip", "kind": "function",
         "text": "Decompress a gzip compressed string.", "score": 0.7512},
        {"name": "json.loads", "module": "json", "kind": "", "text": "Deserialize s.", "score": 0.2},
    ]


# --- composing ----------------------------------------------------------------------------------------------------------


def test_sentences_split_on_sentence_ends_only(research_advisor):
    split = research_advisor.answers.split_sentences
    assert split("Heap queue (a.k.a. priority queue). Heaps are arrays, e.g. lists. See os.path.join. Done") == [
        "Heap queue (a.k.a. priority queue).", "Heaps are arrays, e.g. lists.", "See os.path.join.", "Done"]
    assert research_advisor.answers.prose_sentences("str -> Construct a date from a string in ISO 8601 format.") == [
        "Construct a date from a string in ISO 8601 format."]
    assert research_advisor.answers.prose_sentences("od.clear() -> None. Remove all items from od.") == [
        "Remove all items from od."]


@pytest.mark.parametrize(
    ("passage", "sentence", "expected"),
    [
        (_p("gzip.open", "", 0), "Open a gzip-compressed file in binary or text mode.",
         "Use `gzip.open` to open a gzip-compressed file in binary or text mode."),
        (_p("math.sqrt", "", 0), "Return the square root of x.", "`math.sqrt` returns the square root of x."),
        (_p("uuid.uuid4", "", 0), "Generate a random UUID", "Use `uuid.uuid4` to generate a random UUID."),
        (_p("sqlite3.Cursor.execute", "", 0), "Executes an SQL statement.", "`sqlite3.Cursor.execute` executes an SQL statement."),
        (_p("sqlite3.Cursor.executemany", "", 0), "Repeatedly executes an SQL statement.",
         "`sqlite3.Cursor.executemany` repeatedly executes an SQL statement."),
        (_p("gzip.GzipFile", "", 0, "class"), "The GzipFile class simulates a file object.",
         "`gzip.GzipFile`: The GzipFile class simulates a file object."),
        (_p("gzip", "", 0, "module"), "Functions that read and write gzipped files.",
         "The `gzip` module: Functions that read and write gzipped files."),
        (_p("json.loads", "", 0), "Deserialize ``s`` (a ``str`` instance) to a `Python` object.",
         'Use `json.loads` to deserialize "s" (a "str" instance) to a \'Python\' object.'),
    ],
)
def test_cite_sentence(research_advisor, passage, sentence, expected):
    assert research_advisor.answers.cite_sentence(passage, sentence) == expected


def test_compose_answer_cites_the_best_passages(research_advisor):
    answers = research_advisor.answers
    result = answers.compose_answer("How do I read a gzip-compressed file?", GZIP)
    assert result["method"] == "extractive"
    assert result["answer"] == (
        "Use `gzip.open` to open a gzip-compressed file in binary or text mode. "
        "Use `gzip.decompress` to decompress a gzip compressed string in one shot. "
        "The `gzip` module: Functions that read and write gzipped files."
    )
    assert [s["name"] for s in result["sources"]] == ["gzip.open", "gzip.decompress", "gzip"]
    assert result["sources"][0] == {"name": "gzip.open", "module": "gzip", "score": 0.83}
    assert 2 <= len(answers.split_sentences(result["answer"])) <= 4
    # every citation is a retrieved passage, and the answer is deterministic
    assert set(answers.parse_citations(result["answer"])) <= {p["name"] for p in GZIP}
    assert answers.compose_answer("How do I read a gzip-compressed file?", list(reversed(GZIP))) == result


def test_compose_answer_skips_weak_and_repeated_passages(research_advisor):
    passages = [
        _p("random.choice", "Choose a random element from a non-empty sequence.", 0.75),
        _p("random.Random.choice", "Choose a random element from a non-empty sequence.", 0.75),
        _p("statistics.mode", "Return the most common data point.", 0.40),
    ]
    result = research_advisor.answers.compose_answer("q", passages)
    assert [s["name"] for s in result["sources"]] == ["random.choice"]
    # one passage: its second sentence (if any) is not invented; here there is none, so one sentence
    assert result["answer"] == "Use `random.choice` to choose a random element from a non-empty sequence."

    one = research_advisor.answers.compose_answer("q", [GZIP[0]])
    assert one["answer"] == (
        "Use `gzip.open` to open a gzip-compressed file in binary or text mode. "
        "The filename argument can be a file name. (`gzip.open`)"
    )


def test_compose_answer_without_passages(research_advisor):
    result = research_advisor.answers.compose_answer("What is the airspeed of a swallow?", [])
    assert result["sources"] == []
    assert "nothing" in result["answer"]


# --- citations and validation -------------------------------------------------------------------------------------------


def test_parse_citations(research_advisor):
    parse = research_advisor.answers.parse_citations
    text = "Use `gzip.open` (or `gzip.open()`), then `json`; not `mode='rt'`, not ``x y``, and `os.path.join`."
    assert parse(text) == ["gzip.open", "json", "os.path.join"]
    assert parse("no citations here") == []
    assert parse("") == []


def test_check_citations(research_advisor):
    check = research_advisor.answers.check_citations
    retrieved = ["gzip.open", "gzip.decompress", "gzip"]
    ok = check("Use `gzip.open` to open it.", ["gzip.open"], retrieved)
    assert ok == {"valid": True, "cited": ["gzip.open"], "unsupported": [], "reason": "every cited source was retrieved"}

    bad = check("Use `gzip.open`, or `shutil.unpack_archive`.", [{"name": "tarfile.open"}], [{"name": n} for n in retrieved])
    assert bad["valid"] is False
    assert bad["cited"] == ["gzip.open", "shutil.unpack_archive", "tarfile.open"]
    assert bad["unsupported"] == ["shutil.unpack_archive", "tarfile.open"]
    assert "shutil.unpack_archive" in bad["reason"]

    nothing = check("Just read the file.", [], retrieved)
    assert nothing["valid"] is False and nothing["unsupported"] == [] and nothing["reason"] == "cites no source"


def test_drop_unsupported_and_final_result(research_advisor):
    answers = research_advisor.answers
    draft = {
        "answer": "Use `gzip.open` to open it. Or use `shutil.unpack_archive` to unpack it. `gzip` reads gzip files.",
        "sources": [{"name": "gzip.open"}, {"name": "shutil.unpack_archive"}, {"name": "gzip"}],
        "method": "llm",
    }
    assert answers.drop_unsupported(draft["answer"], ["shutil.unpack_archive"]) == (
        "Use `gzip.open` to open it. `gzip` reads gzip files.")
    verdict = answers.check_citations(draft["answer"], draft["sources"], GZIP)
    final = answers.final_result("How do I read a gzip file?", GZIP, draft, verdict)
    assert final == {
        "question": "How do I read a gzip file?",
        "method": "llm",
        "validated": False,
        "unsupported": ["shutil.unpack_archive"],
        "note": "removed the sentences citing sources that were not retrieved: shutil.unpack_archive",
        "answer": "Use `gzip.open` to open it. `gzip` reads gzip files.",
        "sources": [{"name": "gzip.open", "module": "gzip", "score": 0.83}, {"name": "gzip", "module": "gzip", "score": 0.71}],
    }

    good = answers.compose_answer("q", GZIP)
    final = answers.final_result("q", GZIP, good, answers.check_citations(good["answer"], good["sources"], GZIP))
    assert final["validated"] is True and final["unsupported"] == [] and "note" not in final
    assert final["answer"] == good["answer"] and final["sources"] == good["sources"]

    everything_bad = {"answer": "Use `tarfile.open`.", "sources": [], "method": "llm"}
    final = answers.final_result("q", GZIP, everything_bad, answers.check_citations(everything_bad["answer"], [], GZIP))
    assert final["answer"] == "No supported answer was found in the retrieved passages."
    assert final["sources"] == [] and final["validated"] is False

    unchecked = answers.final_result("q", GZIP, good, None)
    assert unchecked["validated"] is False and "did not answer" in unchecked["note"]


# --- optional LLM wording -------------------------------------------------------------------------------------------------


def test_llm_settings(research_advisor):
    settings = research_advisor.answers.llm_settings
    assert settings({}) is None
    assert settings({"SOORMA_LLM_BASE_URL": "http://llm/v1/", "SOORMA_LLM_MODEL": "m", "SOORMA_LLM_API_KEY": "k"}) == {
        "base_url": "http://llm/v1", "model": "m", "api_key": "k"}


async def test_reword_with_llm_uses_the_endpoint(research_advisor):
    answers = research_advisor.answers
    seen = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen["url"] = str(request.url)
        seen["auth"] = request.headers.get("authorization")
        seen["body"] = json.loads(request.content)
        text = "Open it with `gzip.open`, which reads gzip-compressed files in binary or text mode."
        return httpx.Response(200, json={"choices": [{"message": {"role": "assistant", "content": text}}]})

    draft = answers.compose_answer("q", GZIP)
    settings = {"base_url": "http://llm/v1", "model": "tiny", "api_key": "k"}
    result = await answers.reword_with_llm("q", GZIP, draft, settings, transport=httpx.MockTransport(handler))
    assert seen["url"] == "http://llm/v1/chat/completions"
    assert seen["auth"] == "Bearer k"
    assert seen["body"]["model"] == "tiny" and seen["body"]["temperature"] == 0
    assert "`gzip.decompress`" in seen["body"]["messages"][1]["content"]
    assert result == {
        "answer": "Open it with `gzip.open`, which reads gzip-compressed files in binary or text mode.",
        "sources": [{"name": "gzip.open", "module": "gzip", "score": 0.83}],
        "method": "llm",
        "model": "tiny",
    }


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(500, text="down"),
        httpx.Response(200, json={"unexpected": True}),
        httpx.Response(200, json={"choices": [{"message": {"content": "An answer that cites nothing."}}]}),
    ],
)
async def test_reword_with_llm_falls_back_to_the_draft(research_advisor, response):
    answers = research_advisor.answers
    draft = answers.compose_answer("q", GZIP)
    result = await answers.reword_with_llm(
        "q", GZIP, draft, {"base_url": "http://llm", "model": "m", "api_key": ""},
        transport=httpx.MockTransport(lambda request: response),
    )
    assert {k: v for k, v in result.items() if k != "llm_error"} == draft
    assert result["llm_error"]


async def test_reword_with_llm_survives_a_network_error(research_advisor):
    answers = research_advisor.answers
    draft = answers.compose_answer("q", GZIP)

    def refuse(request):
        raise httpx.ConnectError("refused", request=request)

    result = await answers.reword_with_llm("q", GZIP, draft, {"base_url": "http://llm", "model": "m", "api_key": ""},
                                           transport=httpx.MockTransport(refuse))
    assert result["answer"] == draft["answer"] and "ConnectError" in result["llm_error"]
