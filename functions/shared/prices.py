"""AWS list prices: ONE table, read by the cost benchmark (``bench/cost.py``: idle floor and marginal cost of a
deployment) and by the platform's usage metering (:mod:`soorma.functions.shared.usage`: the cost of each goal), so the
two never disagree.

Prices are us-east-1 list prices without free tiers, each with its pricing page and the month it was read
(:data:`PRICES_READ`).
"""

from __future__ import annotations

from dataclasses import dataclass

PRICES_READ = "2026-12"


@dataclass(frozen=True)
class Price:
    """One list price: ``usd`` per ``unit`` in us-east-1, from ``url``, read in :data:`PRICES_READ`."""

    usd: float
    unit: str
    url: str
    note: str = ""


AWS = "https://aws.amazon.com"
# Every price the script uses, and nothing else. "confirmed" notes: the search tool found the figure (on the page or
# in a 2026 guide quoting it) in 2026-12; the others are the page's figure as known to the author, not re-read here.
PRICES: dict[str, Price] = {
    "interface_endpoint_hour": Price(0.01, "endpoint-AZ-hour", f"{AWS}/privatelink/pricing/",
                                     "confirmed: billed per endpoint per zone per hour, whatever its traffic"),
    "nat_gateway_hour": Price(0.045, "NAT gateway-hour", f"{AWS}/vpc/pricing/", "confirmed"),
    "nat_gateway_gb": Price(0.045, "GB processed", f"{AWS}/vpc/pricing/", "confirmed"),
    "public_ipv4_hour": Price(0.005, "public IPv4 address-hour", f"{AWS}/vpc/pricing/",
                              "confirmed; in-use and idle addresses alike, since 2024-02"),
    "kms_key_month": Price(1.00, "customer managed key-month", f"{AWS}/kms/pricing/",
                           "each yearly rotation adds $1/month for the first two rotations (capped at $3/month)"),
    "secret_month": Price(0.40, "secret-month", f"{AWS}/secrets-manager/pricing/"),
    "alarm_metric_month": Price(0.10, "standard-resolution alarm metric-month", f"{AWS}/cloudwatch/pricing/"),
    "custom_metric_month": Price(0.30, "metric-month (first 10,000)", f"{AWS}/cloudwatch/pricing/",
                                 "Container Insights (standard) metrics are billed as custom metrics"),
    "aurora_acu_hour": Price(0.12, "ACU-hour (Aurora Serverless v2, Standard)", f"{AWS}/rds/aurora/pricing/",
                             "confirmed; 0 ACU (paused) bills nothing"),
    "aurora_storage_gb_month": Price(0.10, "GB-month (Aurora Standard)", f"{AWS}/rds/aurora/pricing/",
                                     "confirmed; backup storage up to 100% of the cluster volume is free"),
    "fargate_arm_vcpu_hour": Price(0.03238, "vCPU-hour (Linux/ARM)", f"{AWS}/fargate/pricing/", "confirmed"),
    "fargate_arm_gb_hour": Price(0.00356, "GB-hour (Linux/ARM)", f"{AWS}/fargate/pricing/", "confirmed"),
    "fargate_x86_vcpu_hour": Price(0.04048, "vCPU-hour (Linux/x86)", f"{AWS}/fargate/pricing/", "confirmed"),
    "fargate_x86_gb_hour": Price(0.004445, "GB-hour (Linux/x86)", f"{AWS}/fargate/pricing/", "confirmed"),
    "lambda_arm_gb_second": Price(0.0000133334, "GB-second (arm64, first 7.5 billion)", f"{AWS}/lambda/pricing/"),
    "lambda_x86_gb_second": Price(0.0000166667, "GB-second (x86_64, first 6 billion)", f"{AWS}/lambda/pricing/"),
    "lambda_request_million": Price(0.20, "1 million requests", f"{AWS}/lambda/pricing/"),
    "snapstart_cache_gb_second": Price(0.0000015046, "GB-second cached (SnapStart, Python)", f"{AWS}/lambda/pricing/",
                                       "for as long as a published version with SnapStart exists"),
    "http_api_million": Price(1.00, "1 million HTTP API requests (first 300 million)", f"{AWS}/api-gateway/pricing/"),
    "sns_publish_million": Price(0.50, "1 million publishes (64 KB chunks)", f"{AWS}/sns/pricing/",
                                 "deliveries to SQS queues are free on the SNS side"),
    "sqs_request_million": Price(0.40, "1 million standard-queue requests (64 KB chunks)", f"{AWS}/sqs/pricing/"),
    "bedrock_titan_embed_1k_tokens": Price(0.00002, "1,000 input tokens (Titan Text Embeddings v2)",
                                           f"{AWS}/bedrock/pricing/"),
}

#: Model token prices of the LLM gateway (:mod:`soorma.functions.protocols.llm`), per 1,000 tokens: ``(input,
#: output)`` by model id. Bedrock on-demand list prices from https://aws.amazon.com/bedrock/pricing/ (us-east-1);
#: OpenAI's from https://openai.com/api/pricing/ (an OpenAI-compatible provider's own prices may differ: the figure is
#: an estimate for models that are not listed, priced as :data:`DEFAULT_MODEL_PRICE`).
MODEL_PRICES: dict[str, tuple[Price, Price]] = {
    "anthropic.claude-3-haiku-20240307-v1:0": (
        Price(0.00025, "1,000 input tokens (Claude 3 Haiku)", f"{AWS}/bedrock/pricing/"),
        Price(0.00125, "1,000 output tokens (Claude 3 Haiku)", f"{AWS}/bedrock/pricing/")),
    "anthropic.claude-3-5-haiku-20241022-v1:0": (
        Price(0.0008, "1,000 input tokens (Claude 3.5 Haiku)", f"{AWS}/bedrock/pricing/"),
        Price(0.004, "1,000 output tokens (Claude 3.5 Haiku)", f"{AWS}/bedrock/pricing/")),
    "amazon.nova-micro-v1:0": (
        Price(0.000035, "1,000 input tokens (Nova Micro)", f"{AWS}/bedrock/pricing/"),
        Price(0.00014, "1,000 output tokens (Nova Micro)", f"{AWS}/bedrock/pricing/")),
    "amazon.nova-lite-v1:0": (
        Price(0.00006, "1,000 input tokens (Nova Lite)", f"{AWS}/bedrock/pricing/"),
        Price(0.00024, "1,000 output tokens (Nova Lite)", f"{AWS}/bedrock/pricing/")),
    "gpt-4o-mini": (
        Price(0.00015, "1,000 input tokens (gpt-4o-mini)", "https://openai.com/api/pricing/"),
        Price(0.0006, "1,000 output tokens (gpt-4o-mini)", "https://openai.com/api/pricing/")),
}
#: The price of a model :data:`MODEL_PRICES` does not list: Claude 3 Haiku's (an estimate, named as such in the docs).
DEFAULT_MODEL_PRICE = MODEL_PRICES["anthropic.claude-3-haiku-20240307-v1:0"]


def model_token_prices(model: str) -> tuple[float, float]:
    """US dollars per input token and per output token of ``model`` (a Bedrock model id, an inference profile id
    such as ``us.amazon.nova-lite-v1:0`` is matched by its model id, or an OpenAI model name); an unlisted model
    gets :data:`DEFAULT_MODEL_PRICE`."""
    prices = MODEL_PRICES.get(model)
    if prices is None and "." in model:
        prices = MODEL_PRICES.get(model.split(".", 1)[1])  # a cross-region inference profile: "us.<model id>"
    input_price, output_price = prices or DEFAULT_MODEL_PRICE
    return input_price.usd / 1000, output_price.usd / 1000


def price(key: str) -> float:
    """The list price ``PRICES[key].usd`` (US dollars per the entry's ``unit``). Raises ``KeyError`` for an unknown
    key."""
    return PRICES[key].usd
