"""The webhooks' AWS resources (:func:`add_webhooks`, called by :class:`~soorma.infra.platform.SoormaPlatform`): the
design is :mod:`soorma.functions.webhooks.aws`.

* **WebhookSend** queue → the **webhook sender** function, *outside the VPC*: it calls tenants' receivers on the
  internet (IPv4 or IPv6) with no NAT gateway, and reads only the API key pepper (the signing secrets are derived from
  it) and writes only to the control queue.
* **WebhookControl** queue → the **webhooks** function, *in the VPC* (isolated subnets, like the tracker): it records
  outcomes in the database and dispatches due deliveries to the send queue; it may send to both queues and read the
  app database secret, nothing else.
* The tracker and the gateway may send to the control queue (a wake-up after a goal ended, progressed, was cancelled
  or a delivery replayed); they reach SQS at its dual-stack endpoint over IPv6 (``network="ipv6"``), or through an
  SQS interface endpoint the platform adds with ``network="endpoints"``.

Both queues have a dead-letter queue with a depth alarm (:class:`~soorma.infra.platform.QueueWithDlq`). While idle
the only cost is the two event source mappings' long polls (``bench/cost.py`` prices them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import aws_cdk as cdk
from aws_cdk import aws_lambda as lambda_, aws_lambda_event_sources as event_sources

from soorma.functions.shared import settings
from soorma.infra import bundling, packaging

if TYPE_CHECKING:
    from soorma.infra.platform import SoormaPlatform

SENDER_TIMEOUT_S = 60
CONTROL_TIMEOUT_S = 60


def add_webhooks(platform: "SoormaPlatform") -> None:
    """Add the webhook queues and functions to ``platform`` (after its functions exist). Raises ``ValueError`` when
    the platform's settings turn ``SOORMA_WEBHOOK_ALLOW_LOOPBACK`` on (a deployment must never call loopback or
    plain-http URLs)."""
    from soorma.infra.platform import QueueWithDlq, suppress

    own = {**platform.function_settings.get("webhooks", {})}
    if settings.WEBHOOK_ALLOW_LOOPBACK.get(own):
        raise ValueError("SOORMA_WEBHOOK_ALLOW_LOOPBACK is for the local stack only: a deployment calls https URLs "
                         "of public addresses only")
    send = QueueWithDlq(platform, "WebhookSendQueue", visibility_timeout=cdk.Duration.seconds(6 * SENDER_TIMEOUT_S),
                        max_receive_count=3, alarm_topic=platform.alarm_topic)
    control = QueueWithDlq(platform, "WebhookControlQueue",
                           visibility_timeout=cdk.Duration.seconds(6 * CONTROL_TIMEOUT_S), max_receive_count=5,
                           alarm_topic=platform.alarm_topic)
    queues = {settings.WEBHOOK_SEND_QUEUE_URL.name: send.queue.queue_url,
              settings.WEBHOOK_CONTROL_QUEUE_URL.name: control.queue.queue_url}
    package = platform.packages["webhooks"]
    control_fn = platform._function(
        "webhooks", handler=package.handler, layers=package.layers, memory=256, timeout=CONTROL_TIMEOUT_S,
        secrets=[platform.app_secret], env={**own, **queues})
    control_fn.add_event_source(event_sources.SqsEventSource(
        control.queue, batch_size=10, report_batch_item_failures=True))
    send.queue.grant_send_messages(control_fn)
    control.queue.grant_send_messages(control_fn)
    platform.functions["webhooks"] = control_fn

    sender_package = platform.packages["webhook-sender"]
    sender = lambda_.Function(
        platform, "WebhookSenderFunction",
        description="Soorma webhook sender (outside the VPC): one signed attempt per message",
        runtime=bundling.LAMBDA_RUNTIME,
        architecture=lambda_.Architecture.ARM_64,
        code=platform.code,
        handler="soorma.infra.runtime.boot.handler",
        layers=[platform.layer(n) for n in sender_package.layers],
        memory_size=256,
        timeout=cdk.Duration.seconds(SENDER_TIMEOUT_S),
        environment={
            "SOORMA_HANDLER": sender_package.handler,
            "POWERTOOLS_SERVICE_NAME": "soorma-webhook-sender",
            "POWERTOOLS_LOG_LEVEL": "INFO",
            "SOORMA_API_KEY_PEPPER_SECRET_ARN": platform.pepper_secret.secret_arn,
            settings.WEBHOOK_CONTROL_QUEUE_URL.name: control.queue.queue_url,
            **{k: v for k, v in own.items() if k.startswith("SOORMA_WEBHOOK_TIMEOUT")},
        },
        log_group=platform._log_group("webhookSender"),
        logging_format=lambda_.LoggingFormat.JSON,
        params_and_secrets=platform.secrets_extension,
    )
    platform.pepper_secret.grant_read(sender)
    control.queue.grant_send_messages(sender)
    sender.add_event_source(event_sources.SqsEventSource(
        send.queue, batch_size=10, report_batch_item_failures=True))
    suppress(sender,
        ("AwsSolutions-L1", f"Python {packaging.LAMBDA_PYTHON} is the runtime the platform's layers are built for "
         f"(CPython {packaging.LAMBDA_PYTHON} wheels for arm64)."),
        ("AwsSolutions-IAM4", "AWSLambdaBasicExecutionRole is the AWS-managed minimum that lets the function write "
         "its own logs.", ["Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"]),
    )
    platform.webhook_sender = sender

    # Wake-ups after a goal ended, progressed or was cancelled, or a delivery was replayed.
    for name in ("tracker", "gateway"):
        fn = platform.functions[name]
        fn.add_environment(settings.WEBHOOK_CONTROL_QUEUE_URL.name, control.queue.queue_url)
        control.queue.grant_send_messages(fn)
