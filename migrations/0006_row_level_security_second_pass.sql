-- Row-level security, second pass: the authorization gaps of 0003 closed, and policy
-- forms the planner turns into index conditions. Every policy of 0003 is replaced; the
-- rules are in docs/database.md ("Who sees what", "Policy forms").
--
-- 1. Membership is an invitation until the invited user accepts it. Only active members
--    count anywhere (helpers below), so an invitation grants nothing, and a profile is
--    visible only to organizations where its user is an active member.
-- 2. Only owners manage owners (invite, promote, demote, remove), and an organization
--    always keeps an active owner (trigger).
-- 3. A user reads and revokes their sessions; creating or extending one is service_role's.
--    Revoked sessions and API keys stay revoked (trigger).
-- 4. agent_audit_log is appended only by the agents (an internal token's issuer and actor
--    claims, which no user token can carry) or service_role; members read it.
-- 5. Viewers read; they do not start workflow runs.
-- 6. Privileges are granted table by table: anon gets nothing, and no role gets anything on
--    a future table by default, so a table that forgets RLS is closed, not open.

-- Membership: invitation, then acceptance. Existing rows are active; new rows are
-- invitations unless service_role says otherwise.
alter table public.organization_members
  add column status text not null default 'active' check (status in ('invited', 'active')),
  add column invited_by uuid references public.users (id) on delete set null,
  add column accepted_at timestamptz;
alter table public.organization_members alter column status set default 'invited';
alter table public.organization_members alter column invited_by set default auth.uid();
update public.organization_members set accepted_at = created_at where accepted_at is null;

-- The organization the caller acts in (their token's organization_id, or Supabase's
-- app_metadata.organization_id), if they are an active member of it, and their role
-- there. Scalar and evaluated once per statement (an InitPlan): `organization_id = (select
-- private.acting_organization_id())` is an index condition, so RLS alone keeps the
-- (organization_id, ...) index's order, and a LIMIT reads one page, not the organization.
-- PL/pgSQL, not SQL: a SQL function that cannot be inlined (security definer, or a set
-- search_path) is planned again in every statement; PL/pgSQL keeps its plan per session
-- (docs/benchmarks.md measures both).
create or replace function private.claimed_organization_id() returns uuid
  language plpgsql stable
  set search_path = ''
  as $$
declare
  claims jsonb := auth.jwt();
begin
  return nullif(coalesce(claims ->> 'organization_id',
                         claims -> 'app_metadata' ->> 'organization_id'), '')::uuid;
end;
$$;

create or replace function private.acting_role() returns text
  language plpgsql stable security definer
  set search_path = ''
  as $$
declare
  organization uuid := private.claimed_organization_id();
  caller uuid := auth.uid();
  found_role text;
begin
  if organization is null or caller is null then
    return null;
  end if;
  select m.role into found_role from public.organization_members m
  where m.organization_id = organization and m.user_id = caller and m.status = 'active';
  return found_role;
end;
$$;

-- The acting organization if the caller's role there is one of `roles`.
create or replace function private.acting_organization_id_for(roles text[]) returns uuid
  language plpgsql stable
  set search_path = ''
  as $$
begin
  if private.acting_role() = any (roles) then
    return private.claimed_organization_id();
  end if;
  return null;
end;
$$;

-- Acting as any member, a writer (owner, admin or member: not a viewer), an admin, an owner.
create or replace function private.acting_organization_id() returns uuid
  language sql stable
  return private.acting_organization_id_for(array['owner', 'admin', 'member', 'viewer']);
create or replace function private.acting_writer_organization_id() returns uuid
  language sql stable
  return private.acting_organization_id_for(array['owner', 'admin', 'member']);
create or replace function private.acting_admin_organization_id() returns uuid
  language sql stable
  return private.acting_organization_id_for(array['owner', 'admin']);
create or replace function private.acting_owner_organization_id() returns uuid
  language sql stable
  return private.acting_organization_id_for(array['owner']);

-- Every organization the caller is an active member of (the organization switcher).
create or replace function private.member_organization_ids() returns setof uuid
  language sql stable security definer
  set search_path = ''
  as $$
    select organization_id from public.organization_members
    where user_id = (select auth.uid()) and status = 'active'
  $$;

-- Users who share an organization with the caller, both as active members.
create or replace function private.colleague_user_ids() returns setof uuid
  language sql stable security definer
  set search_path = ''
  as $$
    select distinct m.user_id from public.organization_members m
    where m.status = 'active'
      and m.organization_id in (
        select organization_id from public.organization_members
        where user_id = (select auth.uid()) and status = 'active'
      )
  $$;

-- Whether a user is an active member of an organization (team and role grants name only
-- the organization's own people).
create or replace function private.is_active_member(organization uuid, member uuid) returns boolean
  language sql stable security definer
  set search_path = ''
  as $$
    select exists (
      select 1 from public.organization_members
      where organization_id = organization and user_id = member and status = 'active'
    )
  $$;

-- Whether the caller holds an internal token minted by this agent (the issuer and actor
-- claims: a user token never has the internal issuer, which only INTERNAL_TOKEN_SECRET
-- signs).
create or replace function private.acting_agent() returns text
  language plpgsql stable
  set search_path = ''
  as $$
declare
  claims jsonb := auth.jwt();
begin
  if claims ->> 'iss' = 'valuecanvas-internal' then
    return claims -> 'act' ->> 'sub';
  end if;
  return null;
end;
$$;

-- Whether an organization keeps an active owner without this user: another one exists, or
-- the organization itself is being deleted (a cascade). Security definer: the caller may
-- not see the organization's other memberships (acting in another organization).
create policy organizations_read_by_helpers on public.organizations
  for select to current_user using (true);

create or replace function private.keeps_an_owner(organization uuid, leaving uuid) returns boolean
  language sql stable security definer
  set search_path = ''
  as $$
    select not exists (select 1 from public.organizations o where o.id = organization)
      or exists (
        select 1 from public.organization_members m
        where m.organization_id = organization and m.role = 'owner'
          and m.status = 'active' and m.user_id <> leaving
      )
  $$;

-- Membership changes that a policy cannot see (it has no OLD row): an invitation becomes
-- active only when the invited user accepts it, unchanged; a membership never moves; the
-- last active owner stays (unless the organization itself is being deleted). Owner
-- changes of one organization are serialized, so two owners leaving at once cannot both
-- pass the check.
create or replace function private.guard_membership() returns trigger
  language plpgsql
  set search_path = ''
  as $$
begin
  if tg_op = 'UPDATE' then
    if new.organization_id <> old.organization_id or new.user_id <> old.user_id then
      raise exception 'a membership cannot move to another organization or user'
        using errcode = 'insufficient_privilege';
    end if;
    if new.status is distinct from old.status then
      if not (old.status = 'invited' and new.status = 'active') then
        raise exception 'a membership goes from invited to active only (was %, asked %)',
          old.status, new.status using errcode = 'check_violation';
      end if;
      if current_user = 'authenticated' then
        if old.user_id is distinct from (select auth.uid()) then
          raise exception 'only the invited user can accept an invitation'
            using errcode = 'insufficient_privilege';
        end if;
        if new.role <> old.role then
          raise exception 'accepting an invitation keeps the role it was made with (%)', old.role
            using errcode = 'insufficient_privilege';
        end if;
      end if;
      new.accepted_at := now();
    end if;
    -- Permissive policies' checks are OR-ed (the invited user's acceptance check would
    -- pass a member's update of their own row), so who changes a role is decided here.
    if current_user = 'authenticated' and new.role is distinct from old.role then
      if old.organization_id is distinct from (select private.acting_admin_organization_id()) then
        raise exception 'only the organization''s owners and admins change roles'
          using errcode = 'insufficient_privilege';
      end if;
      if 'owner' in (old.role, new.role)
         and old.organization_id is distinct from (select private.acting_owner_organization_id()) then
        raise exception 'only owners make or unmake owners' using errcode = 'insufficient_privilege';
      end if;
    end if;
  end if;
  if old.role = 'owner' and old.status = 'active'
     and (tg_op = 'DELETE' or new.role <> 'owner' or new.status <> 'active') then
    perform pg_advisory_xact_lock(hashtextextended('organization-owners:' || old.organization_id, 0));
    if not private.keeps_an_owner(old.organization_id, old.user_id) then
      raise exception 'organization % would have no owner: make another member owner first',
        old.organization_id using errcode = 'check_violation';
    end if;
  end if;
  return case when tg_op = 'DELETE' then old else new end;
end;
$$;

create trigger guard_membership before update or delete on public.organization_members
  for each row execute function private.guard_membership();

-- A revoked credential stays revoked, for every role.
create or replace function private.keep_revoked() returns trigger
  language plpgsql
  set search_path = ''
  as $$
begin
  if old.revoked_at is not null and new.revoked_at is distinct from old.revoked_at then
    raise exception '% % was revoked at %: it cannot be revived or re-dated',
      tg_table_name, old.id, old.revoked_at using errcode = 'insufficient_privilege';
  end if;
  return new;
end;
$$;

create trigger keep_revoked before update on public.user_sessions
  for each row execute function private.keep_revoked();
create trigger keep_revoked before update on public.api_keys
  for each row execute function private.keep_revoked();

-- The helpers above (and 0003's) run for the API roles only.
revoke all on all functions in schema private from public;
grant execute on all functions in schema private to authenticated, service_role;

-- Every authenticated policy of 0003 and 0004 goes; service_role's stay.
do $$
declare
  policy record;
begin
  for policy in
    select schemaname, tablename, policyname from pg_policies
    where schemaname = 'public' and 'authenticated' = any(roles)
  loop
    execute format('drop policy %I on %I.%I', policy.policyname, policy.schemaname, policy.tablename);
  end loop;
end $$;

-- 0003's admin_organization_ids() served only the policies just dropped: admins act in
-- their acting organization now (acting_admin_organization_id()).
drop function private.admin_organization_ids();

-- Organization tables: members of the acting organization read; its admins manage. Each
-- statement's list names the tables that take the common form; the exceptions follow.
do $$
declare
  managed constant text[] := array[
    'teams', 'integrations', 'webhooks', 'policy_enforcement', 'workflow_definitions'];
  table_name text;
begin
  foreach table_name in array managed || array['team_members', 'user_roles'] loop
    execute format(
      'create policy %I on public.%I for select to authenticated '
      || 'using (organization_id = (select private.acting_organization_id()))',
      table_name || '_select_members', table_name);
  end loop;
  foreach table_name in array managed || array['roles'] loop
    execute format(
      'create policy %I on public.%I for insert to authenticated '
      || 'with check (organization_id = (select private.acting_admin_organization_id()))',
      table_name || '_insert_admins', table_name);
  end loop;
  foreach table_name in array managed || array['team_members', 'roles'] loop
    execute format(
      'create policy %I on public.%I for update to authenticated '
      || 'using (organization_id = (select private.acting_admin_organization_id())) '
      || 'with check (organization_id = (select private.acting_admin_organization_id()))',
      table_name || '_update_admins', table_name);
  end loop;
  foreach table_name in array managed || array['team_members', 'roles', 'user_roles'] loop
    execute format(
      'create policy %I on public.%I for delete to authenticated '
      || 'using (organization_id = (select private.acting_admin_organization_id()))',
      table_name || '_delete_admins', table_name);
  end loop;
end $$;

-- organizations: a user lists every organization they are an active member of; admins of
-- the acting organization rename it (plan and status are the platform's: column grants).
create policy organizations_select_members on public.organizations for select to authenticated
  using (id = any (array(select private.member_organization_ids())));
create policy organizations_update_admins on public.organizations for update to authenticated
  using (id = (select private.acting_admin_organization_id()))
  with check (id = (select private.acting_admin_organization_id()));

-- organization_members: the acting organization's members read its memberships; a user
-- reads their own (invitations included) everywhere. Admins invite, change and remove
-- members; only owners touch owners. The invited user accepts (trigger: nothing else
-- changes) or declines; a member leaves (trigger: not the last owner).
create policy organization_members_select on public.organization_members for select to authenticated
  using (
    organization_id = (select private.acting_organization_id())
    or user_id = (select auth.uid())
  );
create policy organization_members_invite_admins on public.organization_members
  for insert to authenticated
  with check (
    organization_id = (select private.acting_admin_organization_id())
    and status = 'invited'
    and accepted_at is null
    and invited_by = (select auth.uid())
    and (role <> 'owner' or organization_id = (select private.acting_owner_organization_id()))
  );
create policy organization_members_update_admins on public.organization_members
  for update to authenticated
  using (
    organization_id = (select private.acting_admin_organization_id())
    and (role <> 'owner' or organization_id = (select private.acting_owner_organization_id()))
  )
  with check (
    organization_id = (select private.acting_admin_organization_id())
    and (role <> 'owner' or organization_id = (select private.acting_owner_organization_id()))
  );
create policy organization_members_accept_invitation on public.organization_members
  for update to authenticated
  using (user_id = (select auth.uid()) and status = 'invited')
  with check (user_id = (select auth.uid()) and status = 'active');
create policy organization_members_delete_admins on public.organization_members
  for delete to authenticated
  using (
    organization_id = (select private.acting_admin_organization_id())
    and (role <> 'owner' or organization_id = (select private.acting_owner_organization_id()))
  );
create policy organization_members_leave on public.organization_members
  for delete to authenticated
  using (user_id = (select auth.uid()));

-- team_members and user_roles: as organization tables, naming only active members.
create policy team_members_insert_admins on public.team_members for insert to authenticated
  with check (
    organization_id = (select private.acting_admin_organization_id())
    and private.is_active_member(organization_id, user_id)
  );

-- roles: built-in roles (no organization) are readable by everyone signed in.
create policy roles_select_members on public.roles for select to authenticated
  using (organization_id is null or organization_id = (select private.acting_organization_id()));

create policy user_roles_insert_admins on public.user_roles for insert to authenticated
  with check (
    organization_id = (select private.acting_admin_organization_id())
    and private.is_active_member(organization_id, user_id)
    and exists (
      select 1 from public.roles r
      where r.id = role_id and (r.organization_id is null or r.organization_id = user_roles.organization_id)
    )
  );

-- users: a user reads themself and their active colleagues; edits their own name.
create policy users_select_self_and_colleagues on public.users for select to authenticated
  using (id = (select auth.uid()) or id = any (array(select private.colleague_user_ids())));
create policy users_insert_self on public.users for insert to authenticated
  with check (id = (select auth.uid()));
create policy users_update_self on public.users for update to authenticated
  using (id = (select auth.uid())) with check (id = (select auth.uid()));

-- user_sessions: read and revoke one's own; nothing else (column grant: revoked_at only).
create policy user_sessions_select_own on public.user_sessions for select to authenticated
  using (user_id = (select auth.uid()));
create policy user_sessions_revoke_own on public.user_sessions for update to authenticated
  using (user_id = (select auth.uid()) and revoked_at is null)
  with check (user_id = (select auth.uid()) and revoked_at is not null and revoked_at <= now());

-- notification_preferences: one's own, naming only an organization one is active in.
create policy notification_preferences_owner on public.notification_preferences
  for all to authenticated
  using (user_id = (select auth.uid()))
  with check (
    user_id = (select auth.uid())
    and organization_id = any (array(select private.member_organization_ids()))
  );

-- api_keys: admins of the acting organization.
create policy api_keys_admins on public.api_keys for all to authenticated
  using (organization_id = (select private.acting_admin_organization_id()))
  with check (organization_id = (select private.acting_admin_organization_id()));

-- billing_invoices: admins read; written by the billing system (service_role) only.
create policy billing_invoices_select_admins on public.billing_invoices for select to authenticated
  using (organization_id = (select private.acting_admin_organization_id()));

-- audit_logs: admins read; any active member appends as themself.
create policy audit_logs_select_admins on public.audit_logs for select to authenticated
  using (organization_id = (select private.acting_admin_organization_id()));
create policy audit_logs_insert_members on public.audit_logs for insert to authenticated
  with check (
    organization_id = (select private.acting_organization_id())
    and actor_user_id = (select auth.uid())
  );

-- agent_audit_log: members read; an agent appends its own entries, for the user and
-- organization its internal token names.
create policy agent_audit_log_select_members on public.agent_audit_log for select to authenticated
  using (organization_id = (select private.acting_organization_id()));
create policy agent_audit_log_insert_agents on public.agent_audit_log for insert to authenticated
  with check (
    agent = (select private.acting_agent())
    and organization_id = (select private.acting_organization_id())
    and user_id = (select auth.uid())
  );

-- workflow_executions: members read; writers start runs; the starter or an admin updates.
create policy workflow_executions_select_members on public.workflow_executions
  for select to authenticated
  using (organization_id = (select private.acting_organization_id()));
create policy workflow_executions_insert_writers on public.workflow_executions
  for insert to authenticated
  with check (
    organization_id = (select private.acting_writer_organization_id())
    and started_by = (select auth.uid())
  );
create policy workflow_executions_update_starter_or_admins on public.workflow_executions
  for update to authenticated
  using (
    (organization_id = (select private.acting_writer_organization_id())
     and started_by = (select auth.uid()))
    or organization_id = (select private.acting_admin_organization_id())
  )
  with check (organization_id = (select private.acting_organization_id()));
create policy workflow_executions_delete_admins on public.workflow_executions
  for delete to authenticated
  using (organization_id = (select private.acting_admin_organization_id()));

-- llm_usage: in the acting organization, a user reads their own spend and its admins read
-- everyone's. One policy, not two OR-ed (own rows anywhere, or the admins' organization):
-- that OR made RLS alone a BitmapOr of both indexes and a sort, 18 ms a page at 1M rows
-- instead of 0.4 ms. Spend recorded without an organization is read by service_role.
-- The per-row half is an opaque function of the row's user and the statement's InitPlans:
-- written as an OR in the policy, the planner estimated it at 2 % of the organization and
-- chose to read and sort the whole organization instead of walking the index for a page.
create or replace function private.own_row_or_admin(row_user uuid, caller uuid, caller_role text)
  returns boolean
  language plpgsql immutable
  set search_path = ''
  as $$
begin
  return row_user = caller or caller_role in ('owner', 'admin');
end;
$$;
grant execute on function private.own_row_or_admin(uuid, uuid, text) to authenticated, service_role;

create policy llm_usage_select on public.llm_usage for select to authenticated
  using (
    organization_id = (select private.acting_organization_id())
    and private.own_row_or_admin(user_id, (select auth.uid()), (select private.acting_role()))
  );

-- Indexes for the common access paths the policies now serve as index conditions.
create index workflow_executions_organization_created_idx
  on public.workflow_executions (organization_id, created_at desc);
create index agent_audit_log_workflow_execution_idx
  on public.agent_audit_log (workflow_execution_id) where workflow_execution_id is not null;
create index organization_members_organization_status_idx
  on public.organization_members (organization_id) where status = 'invited';
create index user_sessions_user_created_idx on public.user_sessions (user_id, created_at desc);
drop index public.user_sessions_user_id_idx;
create index api_keys_organization_created_idx on public.api_keys (organization_id, created_at desc);
drop index public.api_keys_organization_id_idx;
create index webhooks_organization_created_idx on public.webhooks (organization_id, created_at desc);
drop index public.webhooks_organization_id_idx;
create index billing_invoices_organization_period_idx
  on public.billing_invoices (organization_id, period_start desc);
drop index public.billing_invoices_organization_id_idx;

-- Privileges, table by table. RLS decides rows; these decide statements and columns.
revoke all on all tables in schema public from anon, authenticated, service_role;
revoke all on all sequences in schema public from anon, authenticated, service_role;
alter default privileges in schema public revoke all on tables from anon, authenticated, service_role;
alter default privileges in schema public revoke all on sequences from anon, authenticated, service_role;
alter default privileges in schema public revoke all on functions from anon, authenticated, service_role;

-- authenticated (RLS narrows each to rows).
grant select on public.organizations to authenticated;
grant update (name, slug) on public.organizations to authenticated;
grant select, insert, delete on public.organization_members to authenticated;
grant update (role, status) on public.organization_members to authenticated;
grant select, insert on public.users to authenticated;
grant update (full_name) on public.users to authenticated;
grant select, insert, update, delete on
  public.teams, public.team_members, public.roles, public.integrations, public.webhooks,
  public.notification_preferences, public.policy_enforcement, public.workflow_definitions,
  public.workflow_executions
  to authenticated;
grant select, insert, delete on public.user_roles to authenticated;
grant select on public.user_sessions to authenticated;
grant update (revoked_at) on public.user_sessions to authenticated;
grant select, insert, delete on public.api_keys to authenticated;
grant update (name, revoked_at) on public.api_keys to authenticated;
grant select on public.billing_invoices, public.llm_usage to authenticated;
grant select, insert on public.audit_logs, public.agent_audit_log to authenticated;

-- service_role: everything, except rewriting the append-only trails and the ledger.
grant select, insert, update, delete on
  public.organizations, public.organization_members, public.users, public.teams,
  public.team_members, public.roles, public.user_roles, public.user_sessions,
  public.integrations, public.api_keys, public.webhooks, public.notification_preferences,
  public.billing_invoices, public.policy_enforcement, public.workflow_definitions,
  public.workflow_executions
  to service_role;
grant select, insert on public.audit_logs, public.agent_audit_log, public.llm_usage to service_role;
