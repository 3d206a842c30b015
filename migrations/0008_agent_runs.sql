-- The agents' runs (docs/agents.md): each invocation is one agent_audit_log row, found
-- again by its idempotency key, so a replayed call (the orchestrator resuming a workflow,
-- a client retrying) returns the stored result instead of running, or calling the LLM,
-- twice. A key is the caller's within its organization and agent: it keys nothing else.

alter table public.agent_audit_log
  add column idempotency_key text check (idempotency_key ~ '^[A-Za-z0-9._:-]{1,200}$'),
  add column inputs_hash text check (inputs_hash ~ '^[0-9a-f]{64}$'),
  add column prompt_tokens integer check (prompt_tokens >= 0),
  add column completion_tokens integer check (completion_tokens >= 0),
  add column cost_usd numeric(12, 6) check (cost_usd >= 0),
  add column duration_ms integer check (duration_ms >= 0);

create unique index agent_audit_log_idempotency_key
  on public.agent_audit_log (organization_id, agent, idempotency_key)
  where idempotency_key is not null;
