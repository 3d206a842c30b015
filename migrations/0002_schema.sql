-- The spec's 18 tables. Keys, the indexes the policies filter on, timestamps, and check
-- constraints on enums, amounts and states. Row-level security follows in 0003.

create table public.users (
  id          uuid primary key,  -- the auth user's id (JWT sub)
  email       text not null check (length(email) <= 320 and email ~* '^[^@\s]+@[^@\s]+\.[^@\s]+$'),
  full_name   text check (length(full_name) <= 200),
  status      text not null default 'active' check (status in ('active', 'invited', 'disabled')),
  created_at  timestamptz not null default now(),
  updated_at  timestamptz not null default now()
);
create unique index users_email_key on public.users (lower(email));

create table public.organizations (
  id          uuid primary key default gen_random_uuid(),
  name        text not null check (length(name) between 1 and 200),
  slug        text not null unique check (slug ~ '^[a-z0-9][a-z0-9-]{1,62}$'),
  plan        text not null default 'free' check (plan in ('free', 'team', 'enterprise')),
  status      text not null default 'active' check (status in ('active', 'suspended', 'closed')),
  created_at  timestamptz not null default now(),
  updated_at  timestamptz not null default now()
);

create table public.organization_members (
  organization_id uuid not null references public.organizations (id) on delete cascade,
  user_id         uuid not null references public.users (id) on delete cascade,
  role            text not null default 'member' check (role in ('owner', 'admin', 'member', 'viewer')),
  created_at      timestamptz not null default now(),
  updated_at      timestamptz not null default now(),
  primary key (organization_id, user_id)
);
create index organization_members_user_id_idx on public.organization_members (user_id);

create table public.teams (
  id              uuid primary key default gen_random_uuid(),
  organization_id uuid not null references public.organizations (id) on delete cascade,
  name            text not null check (length(name) between 1 and 200),
  description     text check (length(description) <= 2000),
  created_at      timestamptz not null default now(),
  updated_at      timestamptz not null default now(),
  unique (organization_id, name),
  unique (id, organization_id)
);

create table public.team_members (
  team_id         uuid not null,
  organization_id uuid not null,
  user_id         uuid not null references public.users (id) on delete cascade,
  role            text not null default 'member' check (role in ('lead', 'member')),
  created_at      timestamptz not null default now(),
  primary key (team_id, user_id),
  -- The organization is repeated for the policies; this key keeps it equal to the team's.
  foreign key (team_id, organization_id) references public.teams (id, organization_id) on delete cascade
);
create index team_members_organization_id_idx on public.team_members (organization_id);
create index team_members_user_id_idx on public.team_members (user_id);

create table public.roles (
  id              uuid primary key default gen_random_uuid(),
  organization_id uuid references public.organizations (id) on delete cascade,  -- null: built in
  key             text not null check (key ~ '^[a-z][a-z0-9_]{1,62}$'),
  name            text not null check (length(name) between 1 and 200),
  description     text check (length(description) <= 2000),
  permissions     text[] not null default '{}',
  created_at      timestamptz not null default now(),
  updated_at      timestamptz not null default now(),
  unique nulls not distinct (organization_id, key)
);
create index roles_organization_id_idx on public.roles (organization_id);

create table public.user_roles (
  user_id         uuid not null references public.users (id) on delete cascade,
  role_id         uuid not null references public.roles (id) on delete cascade,
  organization_id uuid not null references public.organizations (id) on delete cascade,
  granted_by      uuid references public.users (id) on delete set null,
  created_at      timestamptz not null default now(),
  primary key (user_id, role_id, organization_id)
);
create index user_roles_organization_id_idx on public.user_roles (organization_id);

create table public.user_sessions (
  id              uuid primary key default gen_random_uuid(),
  user_id         uuid not null references public.users (id) on delete cascade,
  organization_id uuid references public.organizations (id) on delete cascade,
  created_at      timestamptz not null default now(),
  expires_at      timestamptz not null,
  last_seen_at    timestamptz,
  revoked_at      timestamptz,
  ip_address      inet,
  user_agent      text check (length(user_agent) <= 512),
  check (expires_at > created_at)
);
create index user_sessions_user_id_idx on public.user_sessions (user_id);

create table public.audit_logs (
  id              bigint generated always as identity primary key,
  organization_id uuid not null references public.organizations (id),
  actor_user_id   uuid,  -- kept as written, even after the user is gone
  action          text not null check (action ~ '^[a-z][a-z0-9_.:-]{1,99}$'),
  resource_type   text check (length(resource_type) <= 100),
  resource_id     text check (length(resource_id) <= 200),
  details         jsonb not null default '{}' check (jsonb_typeof(details) = 'object'),
  ip_address      inet,
  created_at      timestamptz not null default now()
);
create index audit_logs_organization_created_idx on public.audit_logs (organization_id, created_at desc);

create table public.integrations (
  id                    uuid primary key default gen_random_uuid(),
  organization_id       uuid not null references public.organizations (id) on delete cascade,
  provider              text not null check (provider in ('salesforce', 'hubspot', 'slack', 'microsoft_teams', 'zendesk', 'gainsight', 'webhook')),
  name                  text not null check (length(name) between 1 and 200),
  status                text not null default 'pending' check (status in ('pending', 'active', 'error', 'disabled')),
  config                jsonb not null default '{}' check (jsonb_typeof(config) = 'object'),
  -- A reference into the secret store; credentials themselves never live in this table.
  credentials_secret_ref text check (length(credentials_secret_ref) <= 512),
  created_by            uuid references public.users (id) on delete set null,
  created_at            timestamptz not null default now(),
  updated_at            timestamptz not null default now(),
  unique (organization_id, provider, name)
);

create table public.api_keys (
  id              uuid primary key default gen_random_uuid(),
  organization_id uuid not null references public.organizations (id) on delete cascade,
  name            text not null check (length(name) between 1 and 200),
  -- The shown part of the key, and the sha256 of the whole key: never the key itself.
  key_prefix      text not null check (key_prefix ~ '^[A-Za-z0-9_]{4,16}$'),
  key_hash        text not null unique check (key_hash ~ '^[0-9a-f]{64}$'),
  scopes          text[] not null default '{}',
  created_by      uuid references public.users (id) on delete set null,
  created_at      timestamptz not null default now(),
  expires_at      timestamptz,
  last_used_at    timestamptz,
  revoked_at      timestamptz,
  check (expires_at is null or expires_at > created_at)
);
create index api_keys_organization_id_idx on public.api_keys (organization_id);

create table public.webhooks (
  id              uuid primary key default gen_random_uuid(),
  organization_id uuid not null references public.organizations (id) on delete cascade,
  url             text not null check (url ~ '^https://' and length(url) <= 2048),
  events          text[] not null check (cardinality(events) > 0),
  secret_hash     text check (secret_hash ~ '^[0-9a-f]{64}$'),
  active          boolean not null default true,
  created_by      uuid references public.users (id) on delete set null,
  created_at      timestamptz not null default now(),
  updated_at      timestamptz not null default now()
);
create index webhooks_organization_id_idx on public.webhooks (organization_id);

create table public.notification_preferences (
  user_id         uuid not null references public.users (id) on delete cascade,
  organization_id uuid not null references public.organizations (id) on delete cascade,
  channel         text not null check (channel in ('email', 'slack', 'in_app', 'webhook')),
  event_type      text not null check (event_type ~ '^[a-z][a-z0-9_.]{1,99}$'),
  enabled         boolean not null default true,
  created_at      timestamptz not null default now(),
  updated_at      timestamptz not null default now(),
  primary key (user_id, organization_id, channel, event_type)
);

create table public.billing_invoices (
  id              uuid primary key default gen_random_uuid(),
  organization_id uuid not null references public.organizations (id) on delete cascade,
  invoice_number  text not null unique check (invoice_number ~ '^[A-Z0-9-]{3,40}$'),
  status          text not null default 'draft' check (status in ('draft', 'open', 'paid', 'void', 'uncollectible')),
  currency        text not null default 'USD' check (currency ~ '^[A-Z]{3}$'),
  subtotal_cents  bigint not null check (subtotal_cents >= 0),
  tax_cents       bigint not null default 0 check (tax_cents >= 0),
  total_cents     bigint generated always as (subtotal_cents + tax_cents) stored,
  period_start    date not null,
  period_end      date not null,
  issued_at       timestamptz,
  due_at          timestamptz,
  paid_at         timestamptz,
  created_at      timestamptz not null default now(),
  updated_at      timestamptz not null default now(),
  check (period_end > period_start),
  check (status <> 'paid' or paid_at is not null)
);
create index billing_invoices_organization_id_idx on public.billing_invoices (organization_id);

create table public.policy_enforcement (
  id              uuid primary key default gen_random_uuid(),
  organization_id uuid not null references public.organizations (id) on delete cascade,
  policy_key      text not null check (policy_key ~ '^[a-z][a-z0-9_.]{1,99}$'),
  description     text check (length(description) <= 2000),
  scope           text not null check (scope in ('agent', 'workflow', 'llm', 'data')),
  action          text not null check (action in ('allow', 'warn', 'block')),
  rule            jsonb not null default '{}' check (jsonb_typeof(rule) = 'object'),
  enabled         boolean not null default true,
  created_by      uuid references public.users (id) on delete set null,
  created_at      timestamptz not null default now(),
  updated_at      timestamptz not null default now(),
  unique (organization_id, policy_key)
);

create table public.workflow_definitions (
  id              uuid primary key default gen_random_uuid(),
  organization_id uuid not null references public.organizations (id) on delete cascade,
  name            text not null check (length(name) between 1 and 200),
  version         integer not null default 1 check (version > 0),
  status          text not null default 'draft' check (status in ('draft', 'active', 'archived')),
  definition      jsonb not null check (jsonb_typeof(definition) = 'object'),
  created_by      uuid references public.users (id) on delete set null,
  created_at      timestamptz not null default now(),
  updated_at      timestamptz not null default now(),
  unique (organization_id, name, version),
  unique (id, organization_id)
);

create table public.workflow_executions (
  id                     uuid primary key default gen_random_uuid(),
  organization_id        uuid not null references public.organizations (id) on delete cascade,
  workflow_definition_id uuid not null,
  status                 text not null default 'pending' check (status in ('pending', 'running', 'succeeded', 'failed', 'cancelled')),
  input                  jsonb not null default '{}' check (jsonb_typeof(input) = 'object'),
  output                 jsonb check (jsonb_typeof(output) = 'object'),
  error                  text check (length(error) <= 10000),
  started_by             uuid references public.users (id) on delete set null,
  created_at             timestamptz not null default now(),
  started_at             timestamptz,
  finished_at            timestamptz,
  updated_at             timestamptz not null default now(),
  foreign key (workflow_definition_id, organization_id)
    references public.workflow_definitions (id, organization_id) on delete cascade,
  unique (id, organization_id),
  check (finished_at is null or (started_at is not null and finished_at >= started_at)),
  check (status not in ('succeeded', 'failed', 'cancelled') or finished_at is not null)
);
create index workflow_executions_organization_status_idx on public.workflow_executions (organization_id, status);

create table public.agent_audit_log (
  id                    bigint generated always as identity primary key,
  organization_id       uuid not null references public.organizations (id),
  agent                 text not null check (agent in ('opportunity', 'target', 'realization', 'expansion', 'integrity', 'orchestrator')),
  action                text not null check (action ~ '^[a-z][a-z0-9_.:-]{1,99}$'),
  user_id               uuid,  -- on whose behalf the agent acted
  workflow_execution_id uuid,
  model                 text check (length(model) <= 200),
  input_summary         text check (length(input_summary) <= 10000),
  output                jsonb not null default '{}' check (jsonb_typeof(output) = 'object'),
  verdict               text check (verdict in ('pass', 'warn', 'fail')),
  created_at            timestamptz not null default now(),
  foreign key (workflow_execution_id, organization_id)
    references public.workflow_executions (id, organization_id)
);
create index agent_audit_log_organization_created_idx on public.agent_audit_log (organization_id, created_at desc);

-- updated_at follows every update.
do $$
declare
  table_name text;
begin
  foreach table_name in array array[
    'users', 'organizations', 'organization_members', 'teams', 'roles', 'integrations',
    'webhooks', 'notification_preferences', 'billing_invoices', 'policy_enforcement',
    'workflow_definitions', 'workflow_executions'
  ] loop
    execute format(
      'create trigger set_updated_at before update on public.%I '
      || 'for each row execute function private.set_updated_at()',
      table_name
    );
  end loop;
end $$;

-- Audit trails are append-only for every role, the owner included: triggers apply even
-- where row-level security does not.
create trigger audit_logs_append_only before update or delete on public.audit_logs
  for each row execute function private.refuse_change();
create trigger audit_logs_no_truncate before truncate on public.audit_logs
  for each statement execute function private.refuse_change();
create trigger agent_audit_log_append_only before update or delete on public.agent_audit_log
  for each row execute function private.refuse_change();
create trigger agent_audit_log_no_truncate before truncate on public.agent_audit_log
  for each statement execute function private.refuse_change();
