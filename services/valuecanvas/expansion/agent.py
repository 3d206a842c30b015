"""The expansion agent: the products the customer does not own yet, ranked by the
expected value they add to the KPIs the realization review found short (``ranking``)."""

from __future__ import annotations

from dataclasses import asdict

from valuecanvas.core.agent import Agent, RunContext
from valuecanvas.expansion import ranking
from valuecanvas.expansion.schemas import CandidateOut, ExpansionInput, ExpansionOutput


async def rank_candidates(context: RunContext, body: ExpansionInput) -> ExpansionOutput:
    rows = await context.connection.fetch(
        """select sku, name, family, improves_kpis, typical_uplift, annual_price, prerequisites
           from public.products order by sku"""
    )  # the platform's products and the organization's own (row-level security)
    products = [
        ranking.Product(row["sku"], row["name"], row["family"], tuple(row["improves_kpis"]),
                        row["typical_uplift"], row["annual_price"], tuple(row["prerequisites"]))
        for row in rows
    ]  # fmt: skip
    states = [
        ranking.KpiState(k.kpi, k.status, k.remaining_gap, k.value_per_unit) for k in body.kpis
    ]
    ranked = ranking.rank(products, body.owned, states)
    return ExpansionOutput(
        candidates=[CandidateOut(**asdict(candidate)) for candidate in ranked[: body.limit]],
        considered=len(ranked),
    )


EXPANSION = Agent(
    name="expansion",
    input_model=ExpansionInput,
    output_model=ExpansionOutput,
    run=rank_candidates,
    summary="Upsell and cross-sell candidates ranked by expected value, with the rationale",
)
