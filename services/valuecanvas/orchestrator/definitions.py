"""Workflow definitions as data: a DAG of steps, each naming an agent and mapping its input
from the workflow's input and earlier steps (mapping.py). Checked when a definition is
created: unknown agents and steps, cycles, and reads of steps a step does not wait for are
refused, each named. The built-in definitions are the YAML files in definitions/.
"""

from __future__ import annotations

import graphlib
import json
from collections.abc import Mapping
from functools import cache, lru_cache
from importlib import resources
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, JsonValue, PrivateAttr, model_validator
from pydantic.config import JsonDict

from valuecanvas.catalogue import catalogue
from valuecanvas.orchestrator.mapping import MappingError, reject_nul, sources, step_of

StepId = str


def agents() -> list[str]:
    return [entry.name for entry in catalogue().values() if entry.autoscaling == "agent"]


def _agent_enum(schema: JsonDict) -> None:
    """The document lists the agents; the check below names an unknown one."""
    schema["enum"] = list[JsonValue](agents())


class StepSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: StepId = Field(pattern=r"^[a-z][a-z0-9-]{0,39}$")
    agent: str = Field(min_length=1, max_length=40, json_schema_extra=_agent_enum)
    needs: list[StepId] = Field(default_factory=list, max_length=50)
    input: dict[str, Any] = Field(default_factory=dict, description="mapping expressions")
    timeout_seconds: float | None = Field(default=None, gt=0, le=900)
    attempts: int | None = Field(default=None, ge=1, le=10)


class DefinitionSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: str = Field(default="", max_length=2000)
    steps: list[StepSpec] = Field(min_length=1, max_length=50)
    result: dict[str, Any] | None = Field(
        default=None, description="mapping expressions; default: every step's output by id"
    )
    _levels: list[list[StepSpec]] | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _storable(self) -> DefinitionSpec:
        for step in self.steps:
            reject_nul(step.input, f"step {step.id}: input")
        reject_nul(self.result, "result")
        reject_nul(self.description, "description")
        return self

    @model_validator(mode="after")
    def _a_dag_of_known_agents(self) -> DefinitionSpec:
        ids = [step.id for step in self.steps]
        duplicated = sorted({step for step in ids if ids.count(step) > 1})
        if duplicated:
            raise ValueError(f"step ids are used twice: {', '.join(duplicated)}")
        known_agents = agents()
        for step in self.steps:
            if step.agent not in known_agents:
                raise ValueError(
                    f"step {step.id}: unknown agent {step.agent!r} "
                    f"(known: {', '.join(known_agents)})"
                )
            for need in step.needs:
                if need not in ids:
                    raise ValueError(f"step {step.id} needs unknown step {need!r}")
        sorter = graphlib.TopologicalSorter({step.id: step.needs for step in self.steps})
        try:
            sorter.prepare()
        except graphlib.CycleError as exc:
            raise ValueError(f"the steps form a cycle: {' -> '.join(exc.args[1])}") from None
        ancestors = self.ancestors()
        for step in self.steps:
            try:
                read = {step_of(source) for source in sources(step.input)}
            except MappingError as exc:
                raise ValueError(f"step {step.id}: {exc}") from None
            for other in sorted(name for name in read if name is not None):
                if other not in ids:
                    raise ValueError(f"step {step.id} reads unknown step {other!r}")
                if other not in ancestors[step.id]:
                    raise ValueError(
                        f"step {step.id} reads step {other} but does not wait for it (needs)"
                    )
        try:
            unknown = sorted(
                {step_of(source) for source in sources(self.result)} - {None, *ids}, key=str
            )
        except MappingError as exc:
            raise ValueError(f"result: {exc}") from None
        if unknown:
            raise ValueError(f"result reads unknown step {unknown[0]!r}")
        return self

    def ancestors(self) -> dict[StepId, set[StepId]]:
        needs = {step.id: step.needs for step in self.steps}
        found: dict[StepId, set[StepId]] = {}

        def of(step: StepId) -> set[StepId]:
            if step not in found:
                found[step] = set(needs[step]).union(*(of(need) for need in needs[step]))
            return found[step]

        for step in needs:
            of(step)
        return found

    def levels(self) -> list[list[StepSpec]]:
        """The steps in waves: each wave's steps wait only for earlier waves, and run
        together. Within a wave, the definition's order (the engine's step ids follow it)."""
        if self._levels is None:
            self._levels = self._waves()
        return self._levels

    def _waves(self) -> list[list[StepSpec]]:
        order = {step.id: index for index, step in enumerate(self.steps)}
        by_id = {step.id: step for step in self.steps}
        sorter = graphlib.TopologicalSorter({step.id: step.needs for step in self.steps})
        sorter.prepare()
        waves = []
        while sorter.is_active():
            ready = sorted(sorter.get_ready(), key=order.__getitem__)
            waves.append([by_id[step] for step in ready])
            sorter.done(*ready)
        return waves


def stored(definition: Mapping[str, Any]) -> DefinitionSpec:
    """A definition already checked when it was stored (the one a run carries), parsed once
    per process for each content, not at every run: the result is shared, not to be
    changed."""
    return _parsed(json.dumps(definition, sort_keys=True, separators=(",", ":")))


@lru_cache(maxsize=256)
def _parsed(text: str) -> DefinitionSpec:
    spec = DefinitionSpec.model_validate_json(text)
    spec.levels()  # computed once, with the spec
    return spec


@cache
def builtin_definitions() -> dict[str, DefinitionSpec]:
    """The definitions every organization has (definitions/<name>.yaml), by name."""
    folder = resources.files(__package__).joinpath("definitions")
    return {
        path.name.removesuffix(".yaml"): DefinitionSpec.model_validate(
            yaml.safe_load(path.read_text())
        )
        for path in sorted(folder.iterdir(), key=lambda path: path.name)
        if path.name.endswith(".yaml")
    }
