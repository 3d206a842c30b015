-- The platform API's needs (the gateway's /v1 endpoints; docs/api.md).
--
-- 1. API keys carry scopes from a fixed set, and each key acts through its own service
--    identity: a users row of kind 'service', an active member of the key's organization
--    with the role its scopes allow (admin -> admin, value-cases:write -> member,
--    value-cases:read -> viewer). Row-level security then treats a key like any member,
--    and what a key creates names that identity in created_by. The gateway creates the
--    identity with the key and removes its membership when the key is revoked.
-- 2. audit_logs records the request id, and is read newest first by a cursor on its id.
-- 3. Webhook signing secrets are derived (HMAC of the platform's WEBHOOK_SIGNING_KEY and
--    the webhook's id), so only their hash is stored (secret_hash, from 0002).

alter table public.users
  add column kind text not null default 'person' check (kind in ('person', 'service'));

alter table public.api_keys
  add column principal_id uuid unique references public.users (id) on delete set null;
alter table public.api_keys alter column scopes set default '{value-cases:read}';
alter table public.api_keys add constraint api_keys_scopes_known check (
  cardinality(scopes) > 0
  and scopes <@ array['value-cases:read', 'value-cases:write', 'admin']::text[]
);

alter table public.audit_logs
  add column request_id text check (request_id ~ '^[A-Za-z0-9._:-]{1,128}$');
create index audit_logs_organization_id_idx on public.audit_logs (organization_id, id desc);

-- Teams are listed by name, members by when they joined (cursor pagination's orders).
create index organization_members_organization_created_idx
  on public.organization_members (organization_id, created_at, user_id);
