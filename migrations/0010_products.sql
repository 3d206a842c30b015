-- The product catalogue the expansion agent ranks from (docs/agents.md, "Expansion"):
-- the platform's own products (no organization: every signed-in user reads them, seeded
-- here) and an organization's own (its members read, its admins manage).

create table public.products (
  id              uuid primary key default gen_random_uuid(),
  organization_id uuid references public.organizations (id) on delete cascade,  -- null: the platform's
  sku             text not null check (sku ~ '^[a-z0-9][a-z0-9-]{1,62}$'),
  name            text not null check (length(name) between 1 and 200),
  family          text not null check (family ~ '^[a-z][a-z0-9-]{1,62}$'),
  -- The KPIs it moves, and by what share of the remaining gap (typical, from deployments).
  improves_kpis   text[] not null check (cardinality(improves_kpis) between 1 and 20),
  typical_uplift  numeric(5, 4) not null check (typical_uplift > 0 and typical_uplift <= 1),
  annual_price    numeric(14, 2) not null check (annual_price >= 0),
  prerequisites   text[] not null default '{}',
  created_at      timestamptz not null default now(),
  unique nulls not distinct (organization_id, sku)
);
create index products_organization_idx on public.products (organization_id);

alter table public.products enable row level security;
alter table public.products force row level security;
create policy products_service_role on public.products for all to service_role
  using (true) with check (true);
create policy products_select on public.products for select to authenticated
  using (organization_id is null or organization_id = (select private.acting_organization_id()));
create policy products_insert_admins on public.products for insert to authenticated
  with check (organization_id = (select private.acting_admin_organization_id()));
create policy products_update_admins on public.products for update to authenticated
  using (organization_id = (select private.acting_admin_organization_id()))
  with check (organization_id = (select private.acting_admin_organization_id()));
create policy products_delete_admins on public.products for delete to authenticated
  using (organization_id = (select private.acting_admin_organization_id()));
grant select, insert, update, delete on public.products to authenticated, service_role;

insert into public.products (sku, name, family, improves_kpis, typical_uplift, annual_price, prerequisites) values
  ('vc-core', 'ValueCanvas Core', 'core', '{win rate,deal size}', 0.15, 24000, '{}'),
  ('vc-realization', 'Realization Tracking', 'core', '{net revenue retention,time to value}', 0.20, 18000, '{vc-core}'),
  ('vc-collections', 'Collections Accelerator', 'finance', '{dso,bad debt}', 0.30, 30000, '{vc-core}'),
  ('vc-forecasting', 'Revenue Forecasting', 'finance', '{forecast accuracy,win rate}', 0.25, 36000, '{vc-core}'),
  ('vc-support-ai', 'Support Deflection AI', 'service', '{ticket deflection,csat,time to resolution}', 0.35, 42000, '{}'),
  ('vc-onboarding', 'Guided Onboarding', 'service', '{time to value,activation rate}', 0.40, 15000, '{vc-core}');
