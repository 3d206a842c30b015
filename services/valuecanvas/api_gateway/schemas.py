"""The platform API's bodies: every input with its limits (lengths, enums, UUIDs, no
unknown fields), every output as it is documented."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Generic, Literal, TypeVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator

from valuecanvas.api_gateway.routes import Scope

T = TypeVar("T")
MemberRole = Literal["owner", "admin", "member", "viewer"]
TeamRole = Literal["lead", "member"]
Channel = Literal["email", "slack", "in_app", "webhook"]
WebhookEvent = Literal[
    "workflow.completed", "workflow.failed", "value_case.completed", "value_case.failed"
]
# ASCII only, so that the document's pattern means the same to every regex engine.
Email = Annotated[
    str,
    Field(
        min_length=3, max_length=320, pattern=r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$"
    ),
]
# Postgres text cannot hold NUL: the document says so, and the field refuses it.
Name = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00]+$")]
Text = Annotated[str, Field(max_length=2000, pattern=r"^[^\x00]*$")]


class Input(BaseModel):
    # No stripping: a value is taken exactly as the document describes it.
    model_config = ConfigDict(extra="forbid")


class Page(BaseModel, Generic[T]):
    data: list[T]
    next_cursor: str | None = Field(
        description="pass as ?cursor= for the next page; null at the end"
    )


class Profile(BaseModel):
    id: UUID
    email: str
    full_name: str | None
    kind: Literal["person", "service"]
    status: str
    created_at: datetime


class ProfileUpdate(Input):
    full_name: Name | None = None


class Organization(BaseModel):
    id: UUID
    name: str
    slug: str
    plan: str
    status: str
    created_at: datetime
    my_role: MemberRole | None = None


class OrganizationCreate(Input):
    name: Name
    slug: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$", description="lowercase, digits, '-'")


class OrganizationRename(Input):
    name: Name


class Member(BaseModel):
    user_id: UUID
    email: str | None
    full_name: str | None
    kind: Literal["person", "service"] | None
    role: MemberRole
    status: Literal["invited", "active"]
    invited_by: UUID | None
    created_at: datetime
    accepted_at: datetime | None


class MemberInvite(Input):
    email: Email
    role: MemberRole = "member"


class RoleChange(Input):
    role: MemberRole


class Team(BaseModel):
    id: UUID
    name: str
    description: str | None
    created_at: datetime


class TeamCreate(Input):
    name: Name
    description: Text | None = None


class TeamMember(BaseModel):
    user_id: UUID
    role: TeamRole
    created_at: datetime


class TeamMemberAdd(Input):
    user_id: UUID
    role: TeamRole = "member"


class ApiKey(BaseModel):
    id: UUID
    name: str
    key_prefix: str
    scopes: list[Scope]
    principal_id: UUID | None = Field(description="the key's service identity")
    created_by: UUID | None
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreated(ApiKey):
    key: str = Field(description="the key itself: shown this once, never again")


class ApiKeyCreate(Input):
    name: Name
    scopes: list[Scope] = Field(min_length=1, max_length=3, json_schema_extra={"uniqueItems": True})
    expires_at: datetime | None = Field(default=None, description="in the future; none: no expiry")

    @field_validator("scopes")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("a scope is listed twice")
        return value

    @field_validator("expires_at")
    @classmethod
    def _future(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("give a time zone (for example 2027-01-01T00:00:00Z)")
        if value <= datetime.now(UTC):
            raise ValueError("must be in the future")
        if value.year > 2100:
            raise ValueError("must be before 2100")
        return value


class Webhook(BaseModel):
    id: UUID
    url: str
    events: list[WebhookEvent]
    active: bool
    created_by: UUID | None
    created_at: datetime


class WebhookCreated(Webhook):
    secret: str = Field(description="the signing secret: shown this once, never again")


class WebhookCreate(Input):
    # ASCII classes only: `\s` means different things to the document's regex engine
    # and to the validator's.
    url: str = Field(
        pattern=r"^https://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~:/?#@!$&'()*+,;=%-]*)?$",
        max_length=2048,
    )
    events: list[WebhookEvent] = Field(
        min_length=1, max_length=4, json_schema_extra={"uniqueItems": True}
    )

    @field_validator("events")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("an event is listed twice")
        return value


class NotificationPreference(BaseModel):
    organization_id: UUID
    channel: Channel
    event_type: str
    enabled: bool
    updated_at: datetime


class NotificationPreferenceSet(Input):
    channel: Channel
    event_type: str = Field(pattern=r"^[a-z][a-z0-9_.]{1,99}$")
    enabled: bool


class AuditEntry(BaseModel):
    id: int
    actor_user_id: UUID | None
    action: str
    resource_type: str | None
    resource_id: str | None
    details: dict[str, Any]
    request_id: str | None
    created_at: datetime
