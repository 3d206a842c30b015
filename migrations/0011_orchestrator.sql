-- The orchestrator (docs/orchestrator.md) and the opportunity agent's value-driver
-- catalogue (docs/agents.md, "Opportunity").
--
-- 1. The durable-workflow engine's own tables (DBOS Transact) live in the schema dbos,
--    owned by the role orchestrator: the engine creates and migrates them itself, as that
--    role (the services' login role sets it for the engine's connections only). Nothing
--    else is granted on it; no API role reaches it.
-- 2. workflow_executions gain what a run reports: its value case, per-step progress, the
--    step that failed. value_cases gain their input, result and integrity verdict.
-- 3. webhook_deliveries: every attempt to deliver a workflow's webhook, for the admins.
-- 4. value_drivers: the catalogue pains are mapped to (the platform's, seeded, and an
--    organization's own), like products in 0010.

do $$
begin
  if not exists (select from pg_roles where rolname = 'orchestrator') then
    create role orchestrator nologin noinherit;
  end if;
end $$;
create schema if not exists dbos authorization orchestrator;
revoke all on schema dbos from public;
-- The role that migrates is the one the services log in as on RDS: it may set this role.
-- The local platform's login role is given it by the local_platform role.
grant orchestrator to current_user;

alter table public.workflow_executions
  add column value_case_id uuid,
  add column steps jsonb not null default '{}' check (jsonb_typeof(steps) = 'object'),
  add column failed_step text check (length(failed_step) <= 100),
  add foreign key (value_case_id, organization_id)
    references public.value_cases (id, organization_id) on delete cascade;
create index workflow_executions_value_case_idx
  on public.workflow_executions (value_case_id, created_at desc) where value_case_id is not null;

alter table public.value_cases
  add column input jsonb not null default '{}' check (jsonb_typeof(input) = 'object'),
  add column result jsonb check (jsonb_typeof(result) = 'object'),
  add column verdict text check (verdict in ('pass', 'warn', 'fail'));

-- Deliveries are written by the orchestrator (service_role) and read by the
-- organization's admins, as the webhooks themselves are.
create table public.webhook_deliveries (
  id                    bigint generated always as identity primary key,
  organization_id       uuid not null references public.organizations (id) on delete cascade,
  webhook_id            uuid not null references public.webhooks (id) on delete cascade,
  workflow_execution_id uuid,
  event                 text not null check (event ~ '^[a-z][a-z0-9_.]{1,99}$'),
  attempt               integer not null check (attempt between 1 and 100),
  status_code           integer check (status_code between 100 and 599),
  error                 text check (length(error) <= 1000),
  succeeded             boolean not null,
  duration_ms           integer not null check (duration_ms >= 0),
  created_at            timestamptz not null default now(),
  foreign key (workflow_execution_id, organization_id)
    references public.workflow_executions (id, organization_id) on delete cascade
);
create index webhook_deliveries_webhook_created_idx
  on public.webhook_deliveries (organization_id, webhook_id, created_at desc);
alter table public.webhook_deliveries enable row level security;
alter table public.webhook_deliveries force row level security;
create policy webhook_deliveries_service_role on public.webhook_deliveries for all
  to service_role using (true) with check (true);
create policy webhook_deliveries_select_admins on public.webhook_deliveries for select
  to authenticated using (organization_id = (select private.acting_admin_organization_id()));
grant select on public.webhook_deliveries to authenticated;
grant select, insert on public.webhook_deliveries to service_role;

create table public.value_drivers (
  id              uuid primary key default gen_random_uuid(),
  organization_id uuid references public.organizations (id) on delete cascade,  -- null: the platform's
  driver          text not null check (driver ~ '^[a-z][a-z0-9-]{1,62}$'),
  name            text not null check (length(name) between 1 and 200),
  kpi             text not null check (length(kpi) between 1 and 200),
  unit            text not null check (length(unit) between 1 and 40),
  direction       text not null check (direction in ('increase', 'decrease')),
  -- What a unit of improvement is worth a year: the account's value_basis (a number in
  -- its profile, such as annual_revenue) times value_factor. formula says it in words.
  value_basis     text not null check (value_basis ~ '^[a-z][a-z0-9_]{1,62}$'),
  value_factor    numeric(20, 10) not null check (value_factor > 0),
  formula         text not null check (length(formula) between 1 and 500),
  -- Typical baseline and improvement (a share of the baseline), from deployments.
  typical_baseline_low  numeric(20, 6) not null,
  typical_baseline_high numeric(20, 6) not null check (typical_baseline_high >= typical_baseline_low),
  typical_improvement   numeric(5, 4) not null check (typical_improvement > 0 and typical_improvement < 1),
  -- Phrases that signal the pain in discovery notes (the offline extractor's cue).
  keywords        text[] not null check (cardinality(keywords) between 1 and 50),
  created_at      timestamptz not null default now(),
  unique nulls not distinct (organization_id, driver)
);
create index value_drivers_organization_idx on public.value_drivers (organization_id);
alter table public.value_drivers enable row level security;
alter table public.value_drivers force row level security;
create policy value_drivers_service_role on public.value_drivers for all to service_role
  using (true) with check (true);
create policy value_drivers_select on public.value_drivers for select to authenticated
  using (organization_id is null or organization_id = (select private.acting_organization_id()));
create policy value_drivers_insert_admins on public.value_drivers for insert to authenticated
  with check (organization_id = (select private.acting_admin_organization_id()));
create policy value_drivers_update_admins on public.value_drivers for update to authenticated
  using (organization_id = (select private.acting_admin_organization_id()))
  with check (organization_id = (select private.acting_admin_organization_id()));
create policy value_drivers_delete_admins on public.value_drivers for delete to authenticated
  using (organization_id = (select private.acting_admin_organization_id()));
grant select, insert, update, delete on public.value_drivers to authenticated, service_role;

insert into public.value_drivers
  (driver, name, kpi, unit, direction, value_basis, value_factor, formula,
   typical_baseline_low, typical_baseline_high, typical_improvement, keywords) values
  ('collections', 'Faster collections', 'dso', 'days', 'decrease', 'annual_revenue', 0.0002191781,
   'a day of receivables financed at 8% a year: annual_revenue x 0.08 / 365',
   30, 90, 0.20, '{dso,days sales outstanding,collections,late payments,paid late,invoices paid}'),
  ('support-resolution', 'Faster ticket resolution', 'time to resolution', 'hours', 'decrease',
   'support_tickets_per_year', 2.5,
   'an agent hour at $25 saved on a tenth of the tickets: support_tickets_per_year x 2.5',
   4, 72, 0.30, '{resolution time,time to resolve,time to resolution,ticket backlog,tickets take}'),
  ('ticket-deflection', 'Ticket deflection', 'ticket deflection', 'percent', 'increase',
   'support_tickets_per_year', 0.15,
   'a point of deflection avoids 1% of tickets at $15 each: support_tickets_per_year x 0.15',
   5, 40, 0.50, '{deflection,self-service,self service,repetitive tickets,same questions}'),
  ('win-rate', 'Higher win rate', 'win rate', 'percent', 'increase', 'annual_revenue', 0.005,
   'a point of win rate is worth half a percent of revenue: annual_revenue x 0.005',
   10, 40, 0.15, '{win rate,close rate,losing deals,lose deals,lost deals}'),
  ('forecasting', 'Forecast accuracy', 'forecast accuracy', 'percent', 'increase', 'annual_revenue',
   0.0005, 'a point of accuracy saves 0.05% of revenue in misallocated spend: annual_revenue x 0.0005',
   50, 85, 0.15, '{forecast,forecasting,pipeline visibility}'),
  ('onboarding', 'Faster time to value', 'time to value', 'days', 'decrease', 'annual_revenue',
   0.00005, 'a day sooner brings 0.005% of revenue forward: annual_revenue x 0.00005',
   30, 180, 0.30, '{onboarding,time to value,implementation takes,ramp up,go-live}');
