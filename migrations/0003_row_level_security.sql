-- Row-level security on every table, enabled and forced (the owner is not exempt).
--
-- Who sees and changes what (service_role: everything, audit trails append-only):
--   members of an organization read its rows; its owners and admins manage them;
--   a user owns their sessions and notification preferences;
--   api_keys and audit_logs are read by admins only, billing_invoices are read by admins
--   and written by the billing system (service_role) only;
--   anon sees nothing.
-- Policies use the fast forms: `(select auth.uid())` and set-returning helpers evaluated
-- once per statement, and TO clauses so a policy is skipped for roles it is not about.

-- Helpers: security definer so that reading memberships does not recurse into the
-- organization_members policies. They run as the migration role; it gets one read policy.
create or replace function private.member_organization_ids() returns setof uuid
  language sql stable security definer
  set search_path = ''
  as $$
    select organization_id from public.organization_members
    where user_id = (select auth.uid())
  $$;

create or replace function private.admin_organization_ids() returns setof uuid
  language sql stable security definer
  set search_path = ''
  as $$
    select organization_id from public.organization_members
    where user_id = (select auth.uid()) and role in ('owner', 'admin')
  $$;

create or replace function private.colleague_user_ids() returns setof uuid
  language sql stable security definer
  set search_path = ''
  as $$
    select distinct user_id from public.organization_members
    where organization_id in (select private.member_organization_ids())
  $$;

revoke all on all functions in schema private from public;
grant execute on all functions in schema private to authenticated, service_role;

create policy organization_members_read_by_helpers on public.organization_members
  for select to current_user using (true);

-- Privileges: RLS decides rows; these decide statements.
grant usage on schema public to anon, authenticated, service_role;
grant select on all tables in schema public to anon;
grant select, insert, update, delete on all tables in schema public to authenticated, service_role;
grant usage, select on all sequences in schema public to authenticated, service_role;
revoke update, delete, truncate on public.audit_logs, public.agent_audit_log
  from anon, authenticated, service_role;
alter default privileges in schema public
  grant select, insert, update, delete on tables to authenticated, service_role;

do $$
declare
  table_name text;
begin
  for table_name in
    select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where n.nspname = 'public' and c.relkind = 'r'
  loop
    execute format('alter table public.%I enable row level security', table_name);
    execute format('alter table public.%I force row level security', table_name);
    execute format(
      'create policy %I on public.%I for all to service_role using (true) with check (true)',
      table_name || '_service_role', table_name
    );
  end loop;
end $$;

-- Organization-scoped tables: members read, owners and admins manage.
do $$
declare
  table_name text;
begin
  foreach table_name in array array[
    'organization_members', 'teams', 'team_members', 'integrations', 'webhooks',
    'policy_enforcement', 'workflow_definitions'
  ] loop
    execute format(
      'create policy %I on public.%I for select to authenticated '
      || 'using (organization_id in (select private.member_organization_ids()))',
      table_name || '_select_members', table_name);
    execute format(
      'create policy %I on public.%I for insert to authenticated '
      || 'with check (organization_id in (select private.admin_organization_ids()))',
      table_name || '_insert_admins', table_name);
    execute format(
      'create policy %I on public.%I for update to authenticated '
      || 'using (organization_id in (select private.admin_organization_ids())) '
      || 'with check (organization_id in (select private.admin_organization_ids()))',
      table_name || '_update_admins', table_name);
    execute format(
      'create policy %I on public.%I for delete to authenticated '
      || 'using (organization_id in (select private.admin_organization_ids()))',
      table_name || '_delete_admins', table_name);
  end loop;
end $$;

-- organizations: members read; admins update; created and closed by the platform.
create policy organizations_select_members on public.organizations for select to authenticated
  using (id in (select private.member_organization_ids()));
create policy organizations_update_admins on public.organizations for update to authenticated
  using (id in (select private.admin_organization_ids()))
  with check (id in (select private.admin_organization_ids()));

-- users: a user reads themself and the members of their organizations; edits only themself.
create policy users_select_self_and_colleagues on public.users for select to authenticated
  using (id = (select auth.uid()) or id in (select private.colleague_user_ids()));
create policy users_insert_self on public.users for insert to authenticated
  with check (id = (select auth.uid()));
create policy users_update_self on public.users for update to authenticated
  using (id = (select auth.uid())) with check (id = (select auth.uid()));

-- roles: built-in roles (no organization) are readable by everyone signed in.
create policy roles_select_members on public.roles for select to authenticated
  using (organization_id is null or organization_id in (select private.member_organization_ids()));
create policy roles_insert_admins on public.roles for insert to authenticated
  with check (organization_id in (select private.admin_organization_ids()));
create policy roles_update_admins on public.roles for update to authenticated
  using (organization_id in (select private.admin_organization_ids()))
  with check (organization_id in (select private.admin_organization_ids()));
create policy roles_delete_admins on public.roles for delete to authenticated
  using (organization_id in (select private.admin_organization_ids()));

-- user_roles: as organization tables, and a granted role is built in or the organization's own.
create policy user_roles_select_members on public.user_roles for select to authenticated
  using (organization_id in (select private.member_organization_ids()));
create policy user_roles_insert_admins on public.user_roles for insert to authenticated
  with check (
    organization_id in (select private.admin_organization_ids())
    and exists (
      select 1 from public.roles r
      where r.id = role_id and (r.organization_id is null or r.organization_id = user_roles.organization_id)
    )
  );
create policy user_roles_delete_admins on public.user_roles for delete to authenticated
  using (organization_id in (select private.admin_organization_ids()));

-- user_sessions and notification_preferences belong to their user, and name only an
-- organization the user is a member of.
create policy user_sessions_owner on public.user_sessions for all to authenticated
  using (user_id = (select auth.uid()))
  with check (
    user_id = (select auth.uid())
    and (organization_id is null or organization_id in (select private.member_organization_ids()))
  );
create policy notification_preferences_owner on public.notification_preferences
  for all to authenticated
  using (user_id = (select auth.uid()))
  with check (
    user_id = (select auth.uid())
    and organization_id in (select private.member_organization_ids())
  );

-- api_keys: admins only (hashes, but still the organization's credentials).
create policy api_keys_admins on public.api_keys for all to authenticated
  using (organization_id in (select private.admin_organization_ids()))
  with check (organization_id in (select private.admin_organization_ids()));

-- billing_invoices: admins read; written by the billing system only.
create policy billing_invoices_select_admins on public.billing_invoices for select to authenticated
  using (organization_id in (select private.admin_organization_ids()));

-- audit_logs: admins read; any member appends as themself. No update or delete policy.
create policy audit_logs_select_admins on public.audit_logs for select to authenticated
  using (organization_id in (select private.admin_organization_ids()));
create policy audit_logs_insert_members on public.audit_logs for insert to authenticated
  with check (
    organization_id in (select private.member_organization_ids())
    and actor_user_id = (select auth.uid())
  );

-- agent_audit_log: members read; agents append on a member's behalf.
create policy agent_audit_log_select_members on public.agent_audit_log for select to authenticated
  using (organization_id in (select private.member_organization_ids()));
create policy agent_audit_log_insert_members on public.agent_audit_log for insert to authenticated
  with check (
    organization_id in (select private.member_organization_ids())
    and user_id = (select auth.uid())
  );

-- workflow_executions: members read and start runs; the starter (or an admin) updates them.
create policy workflow_executions_select_members on public.workflow_executions
  for select to authenticated
  using (organization_id in (select private.member_organization_ids()));
create policy workflow_executions_insert_members on public.workflow_executions
  for insert to authenticated
  with check (
    organization_id in (select private.member_organization_ids())
    and started_by = (select auth.uid())
  );
create policy workflow_executions_update_starter_or_admins on public.workflow_executions
  for update to authenticated
  using (
    (organization_id in (select private.member_organization_ids()) and started_by = (select auth.uid()))
    or organization_id in (select private.admin_organization_ids())
  )
  with check (organization_id in (select private.member_organization_ids()));
create policy workflow_executions_delete_admins on public.workflow_executions
  for delete to authenticated
  using (organization_id in (select private.admin_organization_ids()));
