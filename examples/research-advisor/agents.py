"""The research-advisor agents: a planner, a researcher, an advisor and a validator.

``soorma local deploy examples/research-advisor`` imports this module and deploys every module-level agent object
(``planner``, ``researcher``, ``advisor``, ``validator``) as its own function; nothing else is needed here (no
handler boilerplate, no ``run()``). The logic they call is plain Python in ``answers.py``.

Flow of one ``research.goal`` ``{"question": ...}``::

    research.goal ─▶ planner ─ research.retrieve ─▶ researcher ─ research.retrieved ─▶ planner
                     planner ─ research.advise   ─▶ advisor    ─ research.advised   ─▶ planner
                     planner ─ research.validate ─▶ validator  ─ research.validated ─▶ planner ─▶ goal result

The planner keeps the question, the passages and the draft in its saved task context between steps (each step
may run in another execution environment); ``result.restore_task()`` brings the goal back and
``task.complete(...)`` answers it with the goal's correlation id.
"""

from __future__ import annotations

import logging

from answers import (
    check_citations,
    compose_answer,
    final_result,
    llm_settings,
    passages_from_hits,
    reword_with_llm,
)
from soorma import Planner, TaskNotFoundError, Tool, Worker

log = logging.getLogger("research-advisor")

#: Passages the researcher retrieves per question.
SEARCH_LIMIT = 8

# --- planner ----------------------------------------------------------------------------------------------------------

planner = Planner(
    "research-planner",
    description="Answers research.goal questions from the Python standard library's documentation: "
    "retrieve passages, draft a cited answer, validate the citations.",
)


async def _restore(result):
    """The goal that delegated this result, or ``None`` for a late duplicate (delivery is at-least-once: after the
    goal was completed its saved context is gone, and a redelivered result has nothing left to do)."""
    try:
        return await result.restore_task()
    except TaskNotFoundError:
        log.info("%s %s: no saved goal (already answered); ignored", result.event_type, result.correlation_id)
        return None


@planner.on_goal("research.goal", chat="research-advisor")
async def plan(goal, context):
    # "text" is the last user message when the goal comes from the OpenAI-compatible chat API (chat= above).
    data = goal.data or {}
    question = str(data.get("question") or data.get("text") or "").strip()
    if not question:
        await goal.fail('research.goal needs {"question": "..."} (or a chat message)')
        return
    goal.state["question"] = question
    await goal.delegate("research.retrieve", {"question": question}, response_event="research.retrieved")


@planner.on_result("research.retrieved")
async def retrieved(result, context):
    task = await _restore(result)
    if task is None:
        return
    if not result.success:
        await task.fail(f"retrieval failed: {result.error}")
        return
    passages = (result.result or {}).get("passages") or []
    task.state["passages"] = passages
    await task.delegate(
        "research.advise",
        {"question": task.state["question"], "passages": passages},
        response_event="research.advised",
    )


@planner.on_result("research.advised")
async def advised(result, context):
    task = await _restore(result)
    if task is None:
        return
    if not result.success:
        await task.fail(f"the advisor failed: {result.error}")
        return
    draft = result.result or {}
    task.state["draft"] = draft
    await task.delegate(
        "research.validate",
        {
            "answer": draft.get("answer", ""),
            "sources": [s["name"] for s in draft.get("sources") or []],
            "retrieved": [p["name"] for p in task.state.get("passages") or []],
        },
        response_event="research.validated",
    )


@planner.on_result("research.validated")
async def validated(result, context):
    task = await _restore(result)
    if task is None:
        return
    verdict = result.result if result.success else None
    if verdict is None:
        log.warning("validator failed for goal %s: %s", task.goal_id, result.error)
    await task.complete(
        final_result(task.state["question"], task.state.get("passages") or [], task.state.get("draft") or {}, verdict)
    )


# --- researcher -------------------------------------------------------------------------------------------------------

researcher = Worker("researcher", description="Retrieves standard-library documentation passages from semantic memory.")


@researcher.on_task("research.retrieve")
async def retrieve(task, context):
    question = str(task.data.get("question") or "")
    hits = await context.memory.search_knowledge(question, limit=SEARCH_LIMIT)
    await task.complete({"question": question, "passages": passages_from_hits(hits)})


# --- advisor ----------------------------------------------------------------------------------------------------------

advisor = Worker(
    "advisor",
    description="Drafts a short answer that cites its sources by qualified name; an OpenAI-compatible LLM "
    "(SOORMA_LLM_BASE_URL) may reword it.",
)


@advisor.on_task("research.advise")
async def advise(task, context):
    question = str(task.data.get("question") or "")
    passages = task.data.get("passages") or []
    draft = compose_answer(question, passages)
    settings = llm_settings()
    if settings is not None and draft["sources"]:
        draft = await reword_with_llm(question, passages, draft, settings)
        if "llm_error" in draft:
            log.warning("LLM wording unavailable, using the extractive answer: %s", draft["llm_error"])
    await task.complete(draft)


# --- validator --------------------------------------------------------------------------------------------------------

validator = Tool("validator", description="Checks that every source an answer cites was retrieved.")


@validator.on_invoke("research.validate")
async def validate(request, context):
    data = request.data
    return check_citations(data.get("answer") or "", data.get("sources") or [], data.get("retrieved") or [])
