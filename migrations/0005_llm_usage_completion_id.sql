-- The ledger is keyed by an id the proxy generates for each completion, not by the
-- client's X-Request-ID: a repeated request id must neither share a rate-limit slot nor
-- overwrite (on conflict do nothing) another completion's row. The request id stays as a
-- correlation field, indexed for look-ups, and is no longer unique.

-- Existing rows get a fresh id (adding a column with a default fills it without an
-- UPDATE, which the append-only trigger would refuse); new rows must bring their own.
alter table public.llm_usage add column completion_id uuid not null default gen_random_uuid();
alter table public.llm_usage alter column completion_id drop default;
alter table public.llm_usage drop constraint llm_usage_pkey;
alter table public.llm_usage add constraint llm_usage_pkey primary key (completion_id);
create index llm_usage_request_id_idx on public.llm_usage (request_id);
