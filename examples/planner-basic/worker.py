"""The worker the plan's ``search`` state calls: answers ``papers.search`` with a (made-up) list of papers."""

from __future__ import annotations

from soorma import Worker
from soorma.context import PlatformContext
from soorma.events import EventEnvelope, EventTopic

worker = Worker(
    name="paper-searcher",
    description="Finds papers on a topic",
    capabilities=["research"],
    events_consumed=["papers.search"],
    events_produced=["papers.found"],
)


@worker.on_event("papers.search", topic=EventTopic.ACTION_REQUESTS)
async def search(event: EventEnvelope, context: PlatformContext) -> None:
    query = str(event.data.get("query") or "nothing")
    limit = int(event.data.get("max_results") or 3)
    papers = [f"Introduction to {query}", f"Advanced {query}", f"{query} in practice", f"{query}: a survey"][:limit]
    await context.bus.respond(
        event_type=event.response_event or "papers.found",
        data={"summary": f"Found {len(papers)} papers on {query}", "papers_found": len(papers), "papers": papers},
        correlation_id=event.correlation_id,
    )


if __name__ == "__main__":
    worker.run()
