-- Memory service, part 2 (soorma.functions.memory): episodic and procedural memory (pgvector), plan context, plans,
-- sessions, knowledge listing, embedding provenance, and the admin-erase scope.
--
-- Same rules as 0004_memory.sql: the three identity columns on every table, row-level security ENABLED and FORCED,
-- policies reading the per-transaction settings through public.soorma_platform_tenant() / soorma_service_tenant() /
-- soorma_service_user(); soorma_app gets its table privileges from 0001's default privileges.
--
-- Vector columns are vector({{embedding_dimensions}}) (SOORMA_EMBEDDING_DIMENSIONS; HNSW indexes a `vector` of at
-- most 2,000 dimensions) and each has an HNSW index with vector_cosine_ops; the queries order by `embedding <=> $q`
-- so the index serves them.

-- ---------------------------------------------------------------------------------------------------------------
-- Admin erase. DELETE /v1/memory/admin/... (role admin, own platform tenant only, checked by the function) runs one
-- transaction with `soorma.erase_scope` set to 'platform' or 'tenant'; these extra permissive policies then let it
-- read and delete every row of the caller's platform tenant (or of one service tenant in it). The platform tenant is
-- still the caller's own setting, so even an erase can never reach another platform tenant. The 'user' scope needs
-- no policy of its own: the identity is set to that user and the owner policies apply.
-- ---------------------------------------------------------------------------------------------------------------
create or replace function public.soorma_erase_scope() returns text
  language sql stable as $$ select nullif(current_setting('soorma.erase_scope', true), '') $$;

create or replace function memory.erasable(row_platform_tenant text, row_service_tenant text) returns boolean
  language sql stable as $$
    select row_platform_tenant = public.soorma_platform_tenant()
       and (public.soorma_erase_scope() = 'platform'
            or (public.soorma_erase_scope() = 'tenant' and row_service_tenant = public.soorma_service_tenant()))
  $$;

-- ---------------------------------------------------------------------------------------------------------------
-- Semantic memory additions.
-- * embedding_model: which provider/model computed the vector ('client' when the caller sent it). Embeddings are
--   reused by content hash only from rows of the same model, so switching providers never mixes vector spaces and a
--   caller-supplied vector is never handed to someone else's identical text. Rows stored before this column existed
--   were all computed by the local model.
-- * listing (GET /semantic?cursor=) walks the owner's rows by (created_at, id).
-- ---------------------------------------------------------------------------------------------------------------
alter table memory.semantic_memory add column embedding_model text;
update memory.semantic_memory set embedding_model = 'local:all-MiniLM-L6-v2' where embedding_model is null;
alter table memory.semantic_memory alter column embedding_model set not null;

drop index memory.semantic_memory_hash_idx;
create index semantic_memory_hash_idx on memory.semantic_memory (platform_tenant_id, content_hash, embedding_model);
create index semantic_memory_owner_created_idx on memory.semantic_memory
  (platform_tenant_id, service_tenant_id, service_user_id, created_at, id);

create policy semantic_memory_erase_read on memory.semantic_memory for select
  using (memory.erasable(platform_tenant_id, service_tenant_id));
create policy semantic_memory_erase on memory.semantic_memory for delete
  using (memory.erasable(platform_tenant_id, service_tenant_id));

create policy working_memory_erase_read on memory.working_memory for select
  using (memory.erasable(platform_tenant_id, service_tenant_id));
create policy working_memory_erase on memory.working_memory for delete
  using (memory.erasable(platform_tenant_id, service_tenant_id));

create policy task_context_erase_read on memory.task_context for select
  using (memory.erasable(platform_tenant_id, service_tenant_id));
create policy task_context_erase on memory.task_context for delete
  using (memory.erasable(platform_tenant_id, service_tenant_id));
-- (task_subtasks rows go with their task: on delete cascade; referential actions are not subject to RLS.)

-- ---------------------------------------------------------------------------------------------------------------
-- Episodic memory: an agent's interaction history with one user (CoALA "episodic"). Private to the identity.
-- ---------------------------------------------------------------------------------------------------------------
create table memory.episodic_memory (
  id                 uuid primary key default gen_random_uuid(),
  platform_tenant_id text not null,
  service_tenant_id  text not null,
  service_user_id    text not null,
  agent_id           text not null,
  role               text not null check (role in ('user', 'assistant', 'system', 'tool')),
  content            text not null,
  content_hash       text not null,
  metadata           jsonb not null default '{}'::jsonb,
  embedding          vector({{embedding_dimensions}}) not null,
  embedding_model    text not null,
  created_at         timestamptz not null default clock_timestamp()
);

-- Recency window (GET /episodic/recent): newest first within (identity, agent).
create index episodic_memory_recent_idx on memory.episodic_memory
  (platform_tenant_id, service_tenant_id, service_user_id, agent_id, created_at desc, id desc);
create index episodic_memory_hash_idx on memory.episodic_memory
  (platform_tenant_id, service_tenant_id, service_user_id, content_hash, embedding_model);
create index episodic_memory_embedding_hnsw on memory.episodic_memory
  using hnsw (embedding vector_cosine_ops);

alter table memory.episodic_memory enable row level security;
alter table memory.episodic_memory force row level security;

create policy episodic_memory_owner on memory.episodic_memory for all
  using (platform_tenant_id = public.soorma_platform_tenant()
         and service_tenant_id = public.soorma_service_tenant()
         and service_user_id = public.soorma_service_user())
  with check (platform_tenant_id = public.soorma_platform_tenant()
              and service_tenant_id = public.soorma_service_tenant()
              and service_user_id = public.soorma_service_user());
create policy episodic_memory_erase_read on memory.episodic_memory for select
  using (memory.erasable(platform_tenant_id, service_tenant_id));
create policy episodic_memory_erase on memory.episodic_memory for delete
  using (memory.erasable(platform_tenant_id, service_tenant_id));

-- ---------------------------------------------------------------------------------------------------------------
-- Procedural memory: an agent's skills, prompts and rules, found by the situation they apply to (the embedding is of
-- trigger_condition, or of content when there is none). Private rows belong to one identity; public rows (written
-- by admin/developer/agent roles) are shared by every service tenant and user of the platform tenant, like public
-- knowledge. Upsert key: upsert_key = 'x:' || external_id, or 'h:' || sha256 of (type, trigger, content).
-- ---------------------------------------------------------------------------------------------------------------
create table memory.procedural_memory (
  id                 uuid primary key default gen_random_uuid(),
  platform_tenant_id text not null,
  service_tenant_id  text not null,
  service_user_id    text not null,
  agent_id           text not null,
  procedure_type     text not null,
  trigger_condition  text,
  content            text not null,
  content_hash       text not null,
  upsert_key         text not null,
  external_id        text,
  is_public          boolean not null default false,
  metadata           jsonb not null default '{}'::jsonb,
  embedding          vector({{embedding_dimensions}}) not null,
  embedding_model    text not null,
  created_at         timestamptz not null default now(),
  updated_at         timestamptz not null default now()
);

create unique index procedural_memory_private_key on memory.procedural_memory
  (platform_tenant_id, service_tenant_id, service_user_id, agent_id, upsert_key) where not is_public;
create unique index procedural_memory_public_key on memory.procedural_memory
  (platform_tenant_id, agent_id, upsert_key) where is_public;
create index procedural_memory_hash_idx on memory.procedural_memory
  (platform_tenant_id, content_hash, embedding_model);
create index procedural_memory_embedding_hnsw on memory.procedural_memory
  using hnsw (embedding vector_cosine_ops);

alter table memory.procedural_memory enable row level security;
alter table memory.procedural_memory force row level security;

create policy procedural_memory_select on memory.procedural_memory for select
  using (platform_tenant_id = public.soorma_platform_tenant()
         and (is_public or (service_tenant_id = public.soorma_service_tenant()
                            and service_user_id = public.soorma_service_user())));
create policy procedural_memory_insert on memory.procedural_memory for insert
  with check (platform_tenant_id = public.soorma_platform_tenant()
              and service_tenant_id = public.soorma_service_tenant()
              and service_user_id = public.soorma_service_user());
create policy procedural_memory_update on memory.procedural_memory for update
  using (platform_tenant_id = public.soorma_platform_tenant()
         and (is_public or (service_tenant_id = public.soorma_service_tenant()
                            and service_user_id = public.soorma_service_user())))
  with check (platform_tenant_id = public.soorma_platform_tenant()
              and (is_public or (service_tenant_id = public.soorma_service_tenant()
                                 and service_user_id = public.soorma_service_user())));
create policy procedural_memory_delete on memory.procedural_memory for delete
  using (platform_tenant_id = public.soorma_platform_tenant()
         and service_tenant_id = public.soorma_service_tenant()
         and service_user_id = public.soorma_service_user());
create policy procedural_memory_erase_read on memory.procedural_memory for select
  using (memory.erasable(platform_tenant_id, service_tenant_id));
create policy procedural_memory_erase on memory.procedural_memory for delete
  using (memory.erasable(platform_tenant_id, service_tenant_id));

-- ---------------------------------------------------------------------------------------------------------------
-- Plan context: a planner's persisted state machine. `version` is bumped by every write (optimistic concurrency,
-- like task_context).
-- ---------------------------------------------------------------------------------------------------------------
create table memory.plan_context (
  id                 uuid primary key default gen_random_uuid(),
  platform_tenant_id text not null,
  service_tenant_id  text not null,
  service_user_id    text not null,
  plan_id            text not null,
  session_id         text,
  goal_event         text not null,
  goal_data          jsonb not null default '{}'::jsonb,
  response_event     text,
  state              jsonb not null default '{}'::jsonb,
  current_state      text,
  correlation_ids    jsonb not null default '[]'::jsonb check (jsonb_typeof(correlation_ids) = 'array'),
  version            integer not null default 1,
  created_at         timestamptz not null default now(),
  updated_at         timestamptz not null default now(),
  constraint plan_context_key unique (platform_tenant_id, service_tenant_id, service_user_id, plan_id)
);

alter table memory.plan_context enable row level security;
alter table memory.plan_context force row level security;

create policy plan_context_owner on memory.plan_context for all
  using (platform_tenant_id = public.soorma_platform_tenant()
         and service_tenant_id = public.soorma_service_tenant()
         and service_user_id = public.soorma_service_user())
  with check (platform_tenant_id = public.soorma_platform_tenant()
              and service_tenant_id = public.soorma_service_tenant()
              and service_user_id = public.soorma_service_user());
create policy plan_context_erase_read on memory.plan_context for select
  using (memory.erasable(platform_tenant_id, service_tenant_id));
create policy plan_context_erase on memory.plan_context for delete
  using (memory.erasable(platform_tenant_id, service_tenant_id));

-- By-correlation lookup ("which plan owns correlation id X?"): a side table kept in step with
-- plan_context.correlation_ids in the same transaction, so the lookup is a primary-key probe (soorma-core used
-- jsonb @> over every plan; a GIN index cannot serve that under RLS, as for task_subtasks in 0004).
create table memory.plan_correlations (
  platform_tenant_id text not null,
  service_tenant_id  text not null,
  service_user_id    text not null,
  correlation_id     text not null,
  plan_id            text not null,
  primary key (platform_tenant_id, service_tenant_id, service_user_id, correlation_id),
  foreign key (platform_tenant_id, service_tenant_id, service_user_id, plan_id)
    references memory.plan_context (platform_tenant_id, service_tenant_id, service_user_id, plan_id)
    on delete cascade
);
create index plan_correlations_plan_idx on memory.plan_correlations
  (platform_tenant_id, service_tenant_id, service_user_id, plan_id);

alter table memory.plan_correlations enable row level security;
alter table memory.plan_correlations force row level security;

create policy plan_correlations_owner on memory.plan_correlations for all
  using (platform_tenant_id = public.soorma_platform_tenant()
         and service_tenant_id = public.soorma_service_tenant()
         and service_user_id = public.soorma_service_user())
  with check (platform_tenant_id = public.soorma_platform_tenant()
              and service_tenant_id = public.soorma_service_tenant()
              and service_user_id = public.soorma_service_user());

-- ---------------------------------------------------------------------------------------------------------------
-- Plans: plan summaries (status, goal, parent) for listing.
-- ---------------------------------------------------------------------------------------------------------------
create table memory.plans (
  id                 uuid primary key default gen_random_uuid(),
  platform_tenant_id text not null,
  service_tenant_id  text not null,
  service_user_id    text not null,
  plan_id            text not null,
  session_id         text,
  goal_event         text not null,
  goal_data          jsonb not null default '{}'::jsonb,
  response_event     text,
  status             text not null default 'running'
                     check (status in ('pending', 'running', 'completed', 'failed', 'paused', 'cancelled')),
  parent_plan_id     text,
  created_at         timestamptz not null default clock_timestamp(),
  updated_at         timestamptz not null default clock_timestamp(),
  constraint plans_key unique (platform_tenant_id, service_tenant_id, service_user_id, plan_id)
);
create index plans_recent_idx on memory.plans
  (platform_tenant_id, service_tenant_id, service_user_id, created_at desc, id desc);
create index plans_status_idx on memory.plans
  (platform_tenant_id, service_tenant_id, service_user_id, status, created_at desc, id desc);

alter table memory.plans enable row level security;
alter table memory.plans force row level security;

create policy plans_owner on memory.plans for all
  using (platform_tenant_id = public.soorma_platform_tenant()
         and service_tenant_id = public.soorma_service_tenant()
         and service_user_id = public.soorma_service_user())
  with check (platform_tenant_id = public.soorma_platform_tenant()
              and service_tenant_id = public.soorma_service_tenant()
              and service_user_id = public.soorma_service_user());
create policy plans_erase_read on memory.plans for select
  using (memory.erasable(platform_tenant_id, service_tenant_id));
create policy plans_erase on memory.plans for delete
  using (memory.erasable(platform_tenant_id, service_tenant_id));

-- ---------------------------------------------------------------------------------------------------------------
-- Sessions: conversations that group plans.
-- ---------------------------------------------------------------------------------------------------------------
create table memory.sessions (
  id                 uuid primary key default gen_random_uuid(),
  platform_tenant_id text not null,
  service_tenant_id  text not null,
  service_user_id    text not null,
  session_id         text not null,
  name               text,
  metadata           jsonb not null default '{}'::jsonb,
  created_at         timestamptz not null default clock_timestamp(),
  last_interaction   timestamptz not null default clock_timestamp(),
  constraint sessions_key unique (platform_tenant_id, service_tenant_id, service_user_id, session_id)
);
create index sessions_recent_idx on memory.sessions
  (platform_tenant_id, service_tenant_id, service_user_id, last_interaction desc, id desc);

alter table memory.sessions enable row level security;
alter table memory.sessions force row level security;

create policy sessions_owner on memory.sessions for all
  using (platform_tenant_id = public.soorma_platform_tenant()
         and service_tenant_id = public.soorma_service_tenant()
         and service_user_id = public.soorma_service_user())
  with check (platform_tenant_id = public.soorma_platform_tenant()
              and service_tenant_id = public.soorma_service_tenant()
              and service_user_id = public.soorma_service_user());
create policy sessions_erase_read on memory.sessions for select
  using (memory.erasable(platform_tenant_id, service_tenant_id));
create policy sessions_erase on memory.sessions for delete
  using (memory.erasable(platform_tenant_id, service_tenant_id));
