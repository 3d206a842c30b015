-- Value cases and the KPI measurements that track their realization (docs/agents.md,
-- "Realization"). Both are organization data under the common rules: the acting
-- organization's members read; its members (not viewers) record and correct; its admins
-- delete. service_role reaches everything, as on every table.

create table public.value_cases (
  id              uuid primary key default gen_random_uuid(),
  organization_id uuid not null references public.organizations (id) on delete cascade,
  name            text not null check (length(name) between 1 and 200),
  account_name    text check (length(account_name) <= 200),
  status          text not null default 'draft'
                  check (status in ('draft', 'running', 'completed', 'failed', 'approved')),
  created_by      uuid default auth.uid() references public.users (id) on delete set null,
  created_at      timestamptz not null default now(),
  updated_at      timestamptz not null default now(),
  unique (id, organization_id)
);
create index value_cases_organization_created_idx
  on public.value_cases (organization_id, created_at desc);
create trigger set_updated_at before update on public.value_cases
  for each row execute function private.set_updated_at();

create table public.kpi_measurements (
  id              uuid primary key default gen_random_uuid(),
  organization_id uuid not null,
  value_case_id   uuid not null,
  kpi             text not null check (length(kpi) between 1 and 200),
  measured_on     date not null,
  value           numeric(20, 6) not null,
  source          text check (length(source) <= 500),
  recorded_by     uuid default auth.uid() references public.users (id) on delete set null,
  created_at      timestamptz not null default now(),
  -- The organization is repeated for the policies; this key keeps it equal to the case's.
  foreign key (value_case_id, organization_id)
    references public.value_cases (id, organization_id) on delete cascade,
  unique (value_case_id, kpi, measured_on)
);
create index kpi_measurements_case_kpi_idx
  on public.kpi_measurements (organization_id, value_case_id, kpi, measured_on);

do $$
declare
  table_name text;
begin
  foreach table_name in array array['value_cases', 'kpi_measurements'] loop
    execute format('alter table public.%I enable row level security', table_name);
    execute format('alter table public.%I force row level security', table_name);
    execute format(
      'create policy %I on public.%I for all to service_role using (true) with check (true)',
      table_name || '_service_role', table_name);
    execute format(
      'create policy %I on public.%I for select to authenticated '
      || 'using (organization_id = (select private.acting_organization_id()))',
      table_name || '_select_members', table_name);
    execute format(
      'create policy %I on public.%I for insert to authenticated '
      || 'with check (organization_id = (select private.acting_writer_organization_id()))',
      table_name || '_insert_writers', table_name);
    execute format(
      'create policy %I on public.%I for update to authenticated '
      || 'using (organization_id = (select private.acting_writer_organization_id())) '
      || 'with check (organization_id = (select private.acting_writer_organization_id()))',
      table_name || '_update_writers', table_name);
    execute format(
      'create policy %I on public.%I for delete to authenticated '
      || 'using (organization_id = (select private.acting_admin_organization_id()))',
      table_name || '_delete_admins', table_name);
    execute format(
      'grant select, insert, update, delete on public.%I to authenticated, service_role',
      table_name);
  end loop;
end $$;
