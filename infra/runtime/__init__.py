"""Run-time glue shipped with every function the CDK app deploys (no AWS CDK import here).

* :mod:`.boot` — the Lambda entry of every platform and agent function: reads the function's secrets from Secrets
  Manager into ``SOORMA_*`` variables, then hands each invocation to the real handler named by ``SOORMA_HANDLER``.
* :mod:`.registrar` — the custom resource that registers deployed agents and issues their API keys, and onboards
  the platform and platform-operator tenants with their bootstrap developer and platform-admin keys.
* :mod:`.bridge_main` — the NATS bridge's process on Fargate; :mod:`.fetch` downloads its code at container start.
"""
