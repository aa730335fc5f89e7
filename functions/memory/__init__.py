"""The memory function: semantic memory on pgvector, working memory and task context (soorma-core's
``/v1/memory`` routes). ``app.create_app`` builds the FastAPI app; ``handler.handler`` is the Lambda entry."""
