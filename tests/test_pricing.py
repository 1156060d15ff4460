"""The model price table and its lookups."""

from __future__ import annotations

import pytest

from tracehouse import pricing
from tracehouse.pricing import Price


@pytest.mark.parametrize(
    ("reported", "listed"),
    [
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4o-mini", "gpt-4o-mini"),
        ("GPT-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("claude-sonnet-4-20250514", "claude-sonnet-4"),
        ("claude-3-5-sonnet-latest", "claude-3-5-sonnet"),
        ("anthropic/claude-3-5-haiku-20241022", "claude-3-5-haiku"),
        ("us.anthropic.claude-sonnet-4-20250514-v1:0", "claude-sonnet-4"),
        ("models/gemini-2.5-pro", "gemini-2.5-pro"),
        ("o3-mini", "o3-mini"),
    ],
)
def test_reported_model_names_find_their_listed_price(reported, listed):
    assert pricing.find_price(reported) is pricing.PRICES[listed]


@pytest.mark.parametrize("unknown", ["my-finetune", "gpt-4o-audio-preview", "", "llama-3-70b"])
def test_unknown_models_have_no_price(unknown):
    assert pricing.find_price(unknown) is None
    assert pricing.cost_usd(unknown, 1000, 1000) is None


def test_cost_counts_cached_and_cache_written_tokens_at_their_prices():
    # claude-sonnet-4: input 3.00, output 15.00, cache read 0.30, cache write 3.75 per million
    cost = pricing.cost_usd("claude-sonnet-4", input_tokens=10_000, output_tokens=1_000,
                            cache_read_tokens=4_000, cache_creation_tokens=2_000)  # fmt: skip
    assert cost == pytest.approx((6_000 * 3.0 + 4_000 * 0.30 + 2_000 * (3.75 - 3.0) + 1_000 * 15.0) / 1e6)
    # More cached tokens than input tokens (a convention that counts them apart) never goes negative.
    assert pricing.cost_usd("gpt-4o", input_tokens=10, cache_read_tokens=50) == pytest.approx(10 * 1.25 / 1e6)


def test_prices_can_be_overridden(monkeypatch):
    monkeypatch.setitem(pricing.PRICES, "gpt-4o", Price(1.0, 2.0))
    assert pricing.cost_usd("gpt-4o-2024-11-20", 1_000_000, 1_000_000) == pytest.approx(3.0)
    table = {"house-model": Price(10.0, 20.0)}
    assert pricing.cost_usd("house-model", 100_000, 0, table=table) == pytest.approx(1.0)
    monkeypatch.setattr(pricing, "PRICES", dict(pricing.PRICES))
    pricing.set_price("Team-Model", Price(0.5, 0.5))
    assert pricing.find_price("team-model-2025-01-01") == Price(0.5, 0.5)
