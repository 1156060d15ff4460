"""Model prices: the one table behind every cost tracehouse computes.

The receiver prices an LLM call that arrives without a cost, and the instrumentation prices the
calls it records; both read :data:`PRICES` through :func:`cost_usd`. Prices are USD per million
tokens, as the providers publish them (list prices, standard tier), checked on the date in
:data:`PRICES_AS_OF`. Override or extend them with :func:`set_price` (or pass a table to
:func:`cost_usd`), for negotiated rates or models missing here.

Cached input tokens are billed at the cache-read price and are part of the input token count
(as GenAI's ``gen_ai.usage.input_tokens`` counts them); reasoning tokens are part of the output
token count and billed as output.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PRICES_AS_OF = "2026-11-01"


@dataclass(frozen=True)
class Price:
    input: float  # USD per million input tokens
    output: float  # USD per million output tokens
    cache_read: float | None = None  # USD per million cached input tokens; None: the input price
    cache_write: float | None = None  # USD per million tokens written to the cache; None: input


PRICES: dict[str, Price] = {
    # OpenAI
    "gpt-4o": Price(2.50, 10.00, 1.25),
    "gpt-4o-mini": Price(0.15, 0.60, 0.075),
    "gpt-4.1": Price(2.00, 8.00, 0.50),
    "gpt-4.1-mini": Price(0.40, 1.60, 0.10),
    "gpt-4.1-nano": Price(0.10, 0.40, 0.025),
    "gpt-5": Price(1.25, 10.00, 0.125),
    "gpt-5-mini": Price(0.25, 2.00, 0.025),
    "gpt-5-nano": Price(0.05, 0.40, 0.005),
    "o1": Price(15.00, 60.00, 7.50),
    "o3": Price(2.00, 8.00, 0.50),
    "o3-mini": Price(1.10, 4.40, 0.55),
    "o4-mini": Price(1.10, 4.40, 0.275),
    "text-embedding-3-small": Price(0.02, 0.0),
    "text-embedding-3-large": Price(0.13, 0.0),
    # Anthropic
    "claude-opus-4-5": Price(5.00, 25.00, 0.50, 6.25),
    "claude-opus-4-1": Price(15.00, 75.00, 1.50, 18.75),
    "claude-opus-4": Price(15.00, 75.00, 1.50, 18.75),
    "claude-sonnet-4-5": Price(3.00, 15.00, 0.30, 3.75),
    "claude-sonnet-4": Price(3.00, 15.00, 0.30, 3.75),
    "claude-haiku-4-5": Price(1.00, 5.00, 0.10, 1.25),
    "claude-3-7-sonnet": Price(3.00, 15.00, 0.30, 3.75),
    "claude-3-5-sonnet": Price(3.00, 15.00, 0.30, 3.75),
    "claude-3-5-haiku": Price(0.80, 4.00, 0.08, 1.00),
    "claude-haiku-4": Price(1.00, 5.00, 0.10, 1.25),
    # Google
    "gemini-2.5-pro": Price(1.25, 10.00, 0.31),
    "gemini-2.5-flash": Price(0.30, 2.50, 0.075),
    "gemini-2.0-flash": Price(0.10, 0.40, 0.025),
    # Mistral
    "mistral-large": Price(2.00, 6.00),
    "mistral-small": Price(0.20, 0.60),
}

# Trailing parts that name a snapshot of a model, not another model: dates, "-latest", versions.
_SNAPSHOT = re.compile(r"(-\d{4}-\d{2}-\d{2}|-\d{8}|-latest|-v\d+(:\d+)?|@\d+|-\d{3,4})$")
_PROVIDER_PREFIX = re.compile(r"^(models/|openai/|anthropic/|google/|mistralai/|[a-z]+\.anthropic\.)")


def find_price(model: str, table: dict[str, Price] | None = None) -> Price | None:
    """The price of a model name as providers report it (``gpt-4o-2024-08-06``,
    ``claude-sonnet-4-20250514``, ``models/gemini-2.5-pro``...), or None if unknown."""
    table = PRICES if table is None else table
    name = _PROVIDER_PREFIX.sub("", model.strip().lower())
    while name:
        if name in table:
            return table[name]
        shorter = _SNAPSHOT.sub("", name)
        if shorter == name:
            return None
        name = shorter
    return None


def cost_usd(
    model: str,
    input_tokens: int = 0,
    output_tokens: int = 0,
    cache_read_tokens: int = 0,
    cache_creation_tokens: int = 0,
    table: dict[str, Price] | None = None,
) -> float | None:
    """The cost of one call, or None when the model has no price."""
    price = find_price(model, table)
    if price is None:
        return None
    cached = min(cache_read_tokens, input_tokens)
    cache_read = price.input if price.cache_read is None else price.cache_read
    cache_write = price.input if price.cache_write is None else price.cache_write
    return (
        (input_tokens - cached) * price.input
        + cached * cache_read
        + cache_creation_tokens * (cache_write - price.input)
        + output_tokens * price.output
    ) / 1_000_000


def set_price(model: str, price: Price) -> None:
    """Add or replace a model's price for this process."""
    PRICES[model.strip().lower()] = price
