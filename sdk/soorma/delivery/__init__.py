"""The JetStream delivery contract: how events in stream ``SOORMA_EVENTS`` reach an agent.

One durable pull consumer per (platform tenant, agent) (:mod:`.route`), configured by :mod:`.consumer`, redelivered
with :mod:`.backoff` delays, and dead-lettered to ``SOORMA_DLQ`` by :mod:`.dead_letters` after ``max_deliveries``.
The platform's bridge (:mod:`soorma.functions.bridge`) and an agent run as a local process (:mod:`soorma.process`)
both follow it, so an agent moves between the two without a consumer of its own kind. Needs ``nats-py`` (extra
``process``) for :mod:`.consumer` and :mod:`.dead_letters`; :mod:`.route` and :mod:`.backoff` are pure.
"""
