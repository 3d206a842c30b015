"""The integrity agent: checks a business case (``checks``) and gives a verdict, stored
with its audit row (a failed verdict keeps a workflow's result from being approved)."""

from __future__ import annotations

import json
from dataclasses import asdict

from valuecanvas.core.agent import Agent, RunContext
from valuecanvas.integrity import checks
from valuecanvas.integrity.schemas import FindingOut, IntegrityInput, IntegrityOutput


async def check_case(context: RunContext, body: IntegrityInput) -> IntegrityOutput:
    rules = [
        {**dict(row), "rule": json.loads(row["rule"])}
        for row in await context.connection.fetch(
            """select policy_key, action, rule from public.policy_enforcement
               where organization_id = (select private.acting_organization_id())
                 and enabled and scope in ('agent', 'workflow')
               order by policy_key"""
        )
    ]
    findings = [
        *checks.recompute(body.inputs, body.output),
        *checks.narrative(body.narrative, body.inputs, body.output, body.tolerance),
        *checks.citations([(c.text, c.source_quote) for c in body.claims], body.sources),
        *checks.policies(body.output, rules),
    ]
    return IntegrityOutput(
        verdict=checks.verdict(findings),
        findings=[FindingOut(**asdict(finding)) for finding in findings],
        checked={
            "scenarios": len(body.output.scenarios),
            "narrative_numbers": len(checks.numbers_in(body.narrative)),
            "claims": len(body.claims),
            "policies": len(rules),
        },
    )


INTEGRITY = Agent(
    name="integrity",
    input_model=IntegrityInput,
    output_model=IntegrityOutput,
    run=check_case,
    summary="Check a business case: numbers recomputed, narrative numbers, citations, policies",
    verdict=lambda output: output.verdict,
)
