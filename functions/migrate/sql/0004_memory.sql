-- Memory service tables (soorma.functions.memory): semantic memory (pgvector), working memory, task context.
--
-- Every table carries the three identity columns and has row-level security ENABLED and FORCED; the policies read
-- the per-transaction settings through public.soorma_platform_tenant() / soorma_service_tenant() /
-- soorma_service_user() (0001_base.sql). soorma_app gets its table privileges from 0001's default privileges.

-- ---------------------------------------------------------------------------------------------------------------
-- Semantic memory: knowledge passages with an embedding. Private rows belong to one (platform tenant, service
-- tenant, service user); public rows are readable by every service tenant and user of the same platform tenant.
-- Upsert keys (the ON CONFLICT arbiters of the app):
--   private: (identity triple, external_id) when external_id is given, else (identity triple, content_hash)
--   public:  (platform tenant, external_id)  when external_id is given, else (platform tenant, content_hash)
-- ---------------------------------------------------------------------------------------------------------------
create table memory.semantic_memory (
  id                 uuid primary key default gen_random_uuid(),
  platform_tenant_id text not null,
  service_tenant_id  text not null,
  service_user_id    text not null,
  content            text not null,
  content_hash       text not null,
  external_id        text,
  is_public          boolean not null default false,
  metadata           jsonb not null default '{}'::jsonb,
  embedding          vector({{embedding_dimensions}}) not null,
  created_at         timestamptz not null default now(),
  updated_at         timestamptz not null default now()
);

create unique index semantic_memory_private_external_key on memory.semantic_memory
  (platform_tenant_id, service_tenant_id, service_user_id, external_id)
  where external_id is not null and not is_public;
create unique index semantic_memory_private_hash_key on memory.semantic_memory
  (platform_tenant_id, service_tenant_id, service_user_id, content_hash)
  where external_id is null and not is_public;
create unique index semantic_memory_public_external_key on memory.semantic_memory
  (platform_tenant_id, external_id)
  where external_id is not null and is_public;
create unique index semantic_memory_public_hash_key on memory.semantic_memory
  (platform_tenant_id, content_hash)
  where external_id is null and is_public;
-- Embedding reuse: "is there already a vector for this content in my platform tenant?"
create index semantic_memory_hash_idx on memory.semantic_memory (platform_tenant_id, content_hash);
-- Vector search. The queries order by `embedding <=> $q` (cosine distance), which this index serves.
create index semantic_memory_embedding_hnsw on memory.semantic_memory
  using hnsw (embedding vector_cosine_ops);

alter table memory.semantic_memory enable row level security;
alter table memory.semantic_memory force row level security;

create policy semantic_memory_select on memory.semantic_memory for select
  using (platform_tenant_id = public.soorma_platform_tenant()
         and (is_public or (service_tenant_id = public.soorma_service_tenant()
                            and service_user_id = public.soorma_service_user())));
create policy semantic_memory_insert on memory.semantic_memory for insert
  with check (platform_tenant_id = public.soorma_platform_tenant()
              and service_tenant_id = public.soorma_service_tenant()
              and service_user_id = public.soorma_service_user());
-- A public row may be rewritten by any identity of its platform tenant (an upsert of the same public external_id or
-- content); a private row only by its owner, and an update can never move a row out of the caller's reach.
create policy semantic_memory_update on memory.semantic_memory for update
  using (platform_tenant_id = public.soorma_platform_tenant()
         and (is_public or (service_tenant_id = public.soorma_service_tenant()
                            and service_user_id = public.soorma_service_user())))
  with check (platform_tenant_id = public.soorma_platform_tenant()
              and (is_public or (service_tenant_id = public.soorma_service_tenant()
                                 and service_user_id = public.soorma_service_user())));
create policy semantic_memory_delete on memory.semantic_memory for delete
  using (platform_tenant_id = public.soorma_platform_tenant()
         and service_tenant_id = public.soorma_service_tenant()
         and service_user_id = public.soorma_service_user());

-- ---------------------------------------------------------------------------------------------------------------
-- Working memory: plan-scoped key/value state.
-- ---------------------------------------------------------------------------------------------------------------
create table memory.working_memory (
  id                 uuid primary key default gen_random_uuid(),
  platform_tenant_id text not null,
  service_tenant_id  text not null,
  service_user_id    text not null,
  plan_id            text not null,
  key                text not null,
  value              jsonb not null,
  created_at         timestamptz not null default now(),
  updated_at         timestamptz not null default now(),
  constraint working_memory_key unique (platform_tenant_id, service_tenant_id, service_user_id, plan_id, key)
);

alter table memory.working_memory enable row level security;
alter table memory.working_memory force row level security;

create policy working_memory_owner on memory.working_memory for all
  using (platform_tenant_id = public.soorma_platform_tenant()
         and service_tenant_id = public.soorma_service_tenant()
         and service_user_id = public.soorma_service_user())
  with check (platform_tenant_id = public.soorma_platform_tenant()
              and service_tenant_id = public.soorma_service_tenant()
              and service_user_id = public.soorma_service_user());

-- ---------------------------------------------------------------------------------------------------------------
-- Task context: a worker's persisted task state. `version` is bumped by every write (optimistic concurrency).
-- ---------------------------------------------------------------------------------------------------------------
create table memory.task_context (
  id                 uuid primary key default gen_random_uuid(),
  platform_tenant_id text not null,
  service_tenant_id  text not null,
  service_user_id    text not null,
  task_id            text not null,
  plan_id            text,
  event_type         text not null,
  response_event     text,
  response_topic     text not null default 'action-results',
  data               jsonb not null default '{}'::jsonb,
  sub_tasks          jsonb not null default '[]'::jsonb check (jsonb_typeof(sub_tasks) = 'array'),
  state              jsonb not null default '{}'::jsonb,
  correlation_id     text,
  session_id         text,
  goal_id            text,
  trace_id           text,
  version            integer not null default 1,
  created_at         timestamptz not null default now(),
  updated_at         timestamptz not null default now(),
  constraint task_context_key unique (platform_tenant_id, service_tenant_id, service_user_id, task_id)
);

alter table memory.task_context enable row level security;
alter table memory.task_context force row level security;

create policy task_context_owner on memory.task_context for all
  using (platform_tenant_id = public.soorma_platform_tenant()
         and service_tenant_id = public.soorma_service_tenant()
         and service_user_id = public.soorma_service_user())
  with check (platform_tenant_id = public.soorma_platform_tenant()
              and service_tenant_id = public.soorma_service_tenant()
              and service_user_id = public.soorma_service_user());

-- By-subtask lookup ("which task delegated sub-task X?"). A side table keyed by the identity and the sub-task id,
-- kept in step with task_context.sub_tasks by the app in the same transaction, so the lookup is a primary-key probe.
-- (A GIN index on sub_tasks cannot serve it under RLS: jsonb @> is not leakproof, so the planner may not use it as an
-- index condition ahead of the policy.)
create table memory.task_subtasks (
  platform_tenant_id text not null,
  service_tenant_id  text not null,
  service_user_id    text not null,
  sub_task_id        text not null,
  task_id            text not null,
  primary key (platform_tenant_id, service_tenant_id, service_user_id, sub_task_id),
  foreign key (platform_tenant_id, service_tenant_id, service_user_id, task_id)
    references memory.task_context (platform_tenant_id, service_tenant_id, service_user_id, task_id)
    on delete cascade
);
create index task_subtasks_task_idx on memory.task_subtasks
  (platform_tenant_id, service_tenant_id, service_user_id, task_id);

alter table memory.task_subtasks enable row level security;
alter table memory.task_subtasks force row level security;

create policy task_subtasks_owner on memory.task_subtasks for all
  using (platform_tenant_id = public.soorma_platform_tenant()
         and service_tenant_id = public.soorma_service_tenant()
         and service_user_id = public.soorma_service_user())
  with check (platform_tenant_id = public.soorma_platform_tenant()
              and service_tenant_id = public.soorma_service_tenant()
              and service_user_id = public.soorma_service_user());
