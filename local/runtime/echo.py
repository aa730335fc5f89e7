"""A built-in handler that returns its event: ``soorma.local.runtime.echo.handler`` (health checks, benchmarks)."""


def handler(event, context):
    return event
