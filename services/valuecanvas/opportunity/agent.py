"""The opportunity agent: pains in the discovery notes, mapped to the value-driver catalogue
and valued. The LLM finds the pains (a validated JSON-schema answer, asked again once if
invalid); with the offline provider the catalogue's cue phrases do. Every number after that
is computed (extract.opportunities)."""

from __future__ import annotations

from valuecanvas.core.agent import Agent, AgentRunError, RunContext
from valuecanvas.core.errors import ProblemError
from valuecanvas.core.llm import LlmUnavailableError, chat
from valuecanvas.opportunity import repository
from valuecanvas.opportunity.extract import (
    Driver,
    Finding,
    opportunities,
    parse_llm_answer,
    prompt,
    response_format,
    rule_findings,
)
from valuecanvas.opportunity.schemas import OpportunityInput, OpportunityOutput


async def _llm_findings(
    context: RunContext, body: OpportunityInput, drivers: list[Driver]
) -> list[Finding] | None:
    """The model's findings; None when the proxy's provider is offline (no model answered)."""
    messages = prompt(body.account, body.discovery_notes, drivers)
    problem = ""
    for _ in range(2):
        try:
            answer = await chat(context, messages, response_format=response_format(drivers))
        except LlmUnavailableError as exc:
            raise ProblemError(503, "llm_unavailable", str(exc)) from None
        if answer.offline:
            return None
        parsed = parse_llm_answer(answer.text, body.discovery_notes, drivers)
        if not isinstance(parsed, str):
            return parsed
        problem = parsed
        messages = [
            *messages,
            {"role": "assistant", "content": answer.text},
            {"role": "user", "content": f"That answer is invalid: {problem}. Answer again."},
        ]
    raise ProblemError(502, "extraction_invalid",
                       f"the model's extraction was invalid twice: {problem}")  # fmt: skip


async def find_opportunities(context: RunContext, body: OpportunityInput) -> OpportunityOutput:
    drivers = await repository.drivers(context.connection)
    findings = await _llm_findings(context, body, drivers)
    extractor = "llm"
    if findings is None:
        findings, extractor = rule_findings(body.discovery_notes, drivers), "rules"
    if not findings:
        raise AgentRunError(
            "discovery_notes", "no pain in the notes matches a driver of the value-driver catalogue"
        )
    found, skipped = opportunities(findings, drivers, body.account)
    if not found:
        raise AgentRunError("account", "the account profile cannot value any driver found: "
                            + "; ".join(skipped))  # fmt: skip
    return OpportunityOutput.model_validate({
        "opportunities": found,
        "benefits": [
            {key: item[key] for key in ("kpi", "baseline", "target", "direction", "value_per_unit")}
            for item in found
        ],
        "claims": [
            {"text": f"{item['name']}: {item['kpi']} is a pain the customer named",
             "source_quote": item["quote"]}
            for item in found
        ],
        "extractor": extractor,
        "skipped": skipped,
    })  # fmt: skip


OPPORTUNITY = Agent(
    name="opportunity",
    input_model=OpportunityInput,
    output_model=OpportunityOutput,
    run=find_opportunities,
    summary="Pains in the discovery notes, mapped to value drivers, with baselines and quotes",
)
