"""The text generation guidance catalog: reusable prompt contracts and usage recipes, and which
text models they are assigned to. Shapes only; the server checks the catalog's rules."""

from __future__ import annotations

import enum
from typing import Any, Literal

from attrs import Factory, frozen

from .licensing import LicensingRecordMetadata as GuidanceRecordMetadata
from .text_claims import GuidanceSource

Role = Literal["system", "user", "assistant", "tool"]
Setting = Any  # a scalar or a flat list, keyed by a text generation setting


class TemplateSyntax(enum.StrEnum):
    jinja2 = "jinja2"
    handlebars = "handlebars"
    python_format = "python_format"
    literal = "literal"
    other = "other"


@frozen(kw_only=True)
class AudienceContent:
    """CommonMark prose for one audience (users or developers); no raw HTML."""

    overview: str = ""
    use_cases: list[str] = Factory(list)
    tips: list[str] = Factory(list)
    caveats: list[str] = Factory(list)


@frozen(kw_only=True)
class PromptMessage:
    role: Role
    content: str


@frozen(kw_only=True)
class PromptExample:
    title: str
    description: str | None = None
    messages: list[PromptMessage]
    rendered_prompt: str | None = None


@frozen(kw_only=True)
class TemplateVariable:
    name: str
    description: str
    required: bool = True


@frozen(kw_only=True)
class RawPromptTemplate:
    """A template shown to people, never executed."""

    template_id: str
    name: str
    syntax: TemplateSyntax
    syntax_name: str | None = None
    template: str
    variables: list[TemplateVariable] = Factory(list)


@frozen(kw_only=True)
class AIHordeRequestExample:
    title: str
    prompt: str
    parameters: dict[str, Setting] = Factory(dict)
    notes: str | None = None


@frozen(kw_only=True)
class _Profile:
    profile_id: str
    display_name: str
    aliases: list[str] = Factory(list)
    summary: str
    user: AudienceContent = Factory(AudienceContent)
    developer: AudienceContent = Factory(AudienceContent)
    examples: list[PromptExample] = Factory(list)
    recommended_settings: dict[str, Setting] = Factory(dict)
    ai_horde_examples: list[AIHordeRequestExample] = Factory(list)
    sources: list[GuidanceSource] = Factory(list)
    deprecated: bool = False
    metadata: GuidanceRecordMetadata = Factory(GuidanceRecordMetadata)


@frozen(kw_only=True)
class PromptContract(_Profile):
    """How to serialise prompts for a family of models."""

    kind: Literal["prompt_contract"] = "prompt_contract"
    interaction_modes: list[Literal["completion", "instruction", "chat"]]
    accepted_roles: list[Role] = Factory(list)
    role_markers: dict[str, str] = Factory(dict)
    stop_sequences: list[str] = Factory(list)
    templates: list[RawPromptTemplate] = Factory(list)


@frozen(kw_only=True)
class UsageRecipe(_Profile):
    """Scenario guidance supplementing a prompt contract."""

    kind: Literal["usage_recipe"] = "usage_recipe"
    capability: Literal["tool_calling", "structured_output"] | None = None
    scenario: str | None = None


PROFILE_KINDS: dict[str, type[PromptContract | UsageRecipe]] = {
    "prompt_contract": PromptContract,
    "usage_recipe": UsageRecipe,
}


@frozen(kw_only=True)
class GuidanceAssignment:
    """Which profiles one canonical text model uses."""

    model_name: str
    primary_profile_id: str
    supplemental_profile_ids: list[str] = Factory(list)
    metadata: GuidanceRecordMetadata = Factory(GuidanceRecordMetadata)
