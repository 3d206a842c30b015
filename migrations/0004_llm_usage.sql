-- The LLM usage ledger: one row per proxied chat completion, written by the llm-proxy's
-- ledger drainer (as service_role) with idempotent inserts keyed by the request id.

create table public.llm_usage (
  request_id        text primary key check (request_id ~ '^[A-Za-z0-9._:-]{1,128}$'),
  user_id           uuid,
  organization_id   uuid,
  logical_model     text not null check (length(logical_model) between 1 and 200),
  provider          text not null check (provider ~ '^[a-z0-9_-]{1,50}$'),
  provider_model    text not null check (length(provider_model) between 1 and 200),
  attempts          integer not null check (attempts >= 1),
  prompt_tokens     integer not null check (prompt_tokens >= 0),
  completion_tokens integer not null check (completion_tokens >= 0),
  tokens_estimated  boolean not null default false,
  cost_usd          numeric(16, 10) not null check (cost_usd >= 0),
  latency_ms        integer not null check (latency_ms >= 0),
  status            text not null check (status in ('succeeded', 'failed')),
  error             text check (length(error) <= 2000),
  streamed          boolean not null default false,
  created_at        timestamptz not null default now()
);
create index llm_usage_organization_created_idx on public.llm_usage (organization_id, created_at);
create index llm_usage_user_created_idx on public.llm_usage (user_id, created_at);

alter table public.llm_usage enable row level security;
alter table public.llm_usage force row level security;

-- The ledger is append-only for every role: spend records are never rewritten.
revoke update, delete, truncate on public.llm_usage from anon, authenticated, service_role;
create trigger llm_usage_append_only before update or delete on public.llm_usage
  for each row execute function private.refuse_change();
create trigger llm_usage_no_truncate before truncate on public.llm_usage
  for each statement execute function private.refuse_change();

create policy llm_usage_service_role_read on public.llm_usage for select to service_role using (true);
create policy llm_usage_service_role_insert on public.llm_usage for insert to service_role with check (true);
-- A user reads their own spend; organization admins read the organization's.
create policy llm_usage_select_own on public.llm_usage for select to authenticated
  using (user_id = (select auth.uid()));
create policy llm_usage_select_admins on public.llm_usage for select to authenticated
  using (organization_id in (select private.admin_organization_ids()));
