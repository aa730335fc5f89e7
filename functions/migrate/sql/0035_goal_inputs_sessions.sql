-- Human input and double-texting (issue 14, items 3 and 6).
--
-- Goal states 'input-required' (A2A's term: the goal waits for one or more answers to input requests its agents
-- made) and 'queued' (the goal waits for its session's running goal to end: double-texting policy 'enqueue').
-- gateway.goal_input_requests holds every input request (written by the tracker when it records the agent's
-- soorma.input.requested event; answered through POST /v1/goals/{id}/input/{request_id}; timed out when the durable
-- timer fires soorma.input.timeout). Owned by (platform tenant, service tenant, service user) like the goals.
-- Sessions get their double-texting policy (multitask_strategy, LangGraph's names:
-- https://langchain-ai.github.io/langgraph/cloud/concepts/double_texting/).
alter table gateway.goals drop constraint goals_status_check;
alter table gateway.goals add constraint goals_status_check
  check (status in ('queued', 'pending', 'running', 'input-required', 'completed', 'failed', 'cancelled'));
-- The oldest queued goal of a session starts first.
create index goals_session_queued on gateway.goals
  (platform_tenant_id, service_tenant_id, service_user_id, session_id, created_at)
  where status = 'queued';

create table gateway.goal_input_requests (
  platform_tenant_id text not null,
  service_tenant_id  text not null,
  service_user_id    text not null,
  request_id         text not null check (length(request_id) between 1 and 200),
  goal_id            uuid not null,
  task_id            text not null,
  correlation_id     text,
  agent              text,
  prompt             text not null default '',
  json_schema        jsonb,
  has_default        boolean not null default false,
  default_answer     jsonb,
  timeout_at         timestamptz,
  status             text not null default 'pending'
                     check (status in ('pending', 'answered', 'timed-out', 'cancelled')),
  answer             jsonb,
  answered_by        text,
  created_at         timestamptz not null default now(),
  answered_at        timestamptz,
  primary key (platform_tenant_id, service_tenant_id, service_user_id, request_id)
);
create index goal_input_requests_goal on gateway.goal_input_requests
  (platform_tenant_id, service_tenant_id, service_user_id, goal_id, created_at);
alter table gateway.goal_input_requests enable row level security;
alter table gateway.goal_input_requests force row level security;
create policy goal_input_requests_identity on gateway.goal_input_requests to soorma_app
  using (platform_tenant_id = public.soorma_platform_tenant()
         and service_tenant_id = public.soorma_service_tenant()
         and service_user_id = public.soorma_service_user())
  with check (platform_tenant_id = public.soorma_platform_tenant()
              and service_tenant_id = public.soorma_service_tenant()
              and service_user_id = public.soorma_service_user());
revoke all on gateway.goal_input_requests from soorma_app;
grant select, insert, update, delete on gateway.goal_input_requests to soorma_app;

-- Double-texting policy 'rollback' deletes the interrupted goal and what the platform recorded of it.
grant delete on gateway.goals, gateway.goal_events, gateway.goal_tasks to soorma_app;

alter table gateway.sessions add column multitask_strategy text not null default 'enqueue'
  check (multitask_strategy in ('reject', 'enqueue', 'interrupt', 'rollback'));
