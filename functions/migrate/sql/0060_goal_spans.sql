-- Traces across events (issue 18 item 1; docs/observability.md): the OpenTelemetry spans of a goal, kept by the
-- platform itself so `GET /v1/goals/{id}/trace` (and the local console) can show one goal's hops as one trace.
--
-- Written by the gateway (the goal's root span, at submit) and by agents through `POST /v1/tracker/spans` (the spans
-- of each event they handle: the delivery, its handlers, their platform and LLM calls). Owned by (platform tenant,
-- service tenant, service user) like the goals: the identity columns come from the caller's identity, never from the
-- body, so a span another identity writes with this goal's id is stored under that identity and never shows in this
-- goal's trace. trace_id/span_id/parent_span_id are W3C Trace Context ids in lower-case hex
-- (https://www.w3.org/TR/trace-context/#traceparent-header-field-values).

create table gateway.goal_spans (
  platform_tenant_id text not null,
  service_tenant_id  text not null,
  service_user_id    text not null,
  trace_id           text not null check (trace_id ~ '^[0-9a-f]{32}$'),
  span_id            text not null check (span_id ~ '^[0-9a-f]{16}$'),
  parent_span_id     text check (parent_span_id ~ '^[0-9a-f]{16}$'),
  goal_id            text check (length(goal_id) <= 255),
  name               text not null check (length(name) between 1 and 256),
  kind               text not null check (kind in ('internal', 'server', 'client', 'producer', 'consumer')),
  start_time         timestamptz not null,
  end_time           timestamptz not null,
  status             text not null check (status in ('unset', 'ok', 'error')),
  attributes         jsonb not null default '{}'::jsonb check (pg_column_size(attributes) <= 16384),
  recorded_at        timestamptz not null default now(),
  primary key (platform_tenant_id, service_tenant_id, service_user_id, trace_id, span_id)
);
create index goal_spans_goal on gateway.goal_spans (goal_id, start_time) where goal_id is not null;

alter table gateway.goal_spans enable row level security;
alter table gateway.goal_spans force row level security;
create policy goal_spans_identity on gateway.goal_spans to soorma_app
  using (platform_tenant_id = public.soorma_platform_tenant()
         and service_tenant_id = public.soorma_service_tenant()
         and service_user_id = public.soorma_service_user())
  with check (platform_tenant_id = public.soorma_platform_tenant()
              and service_tenant_id = public.soorma_service_tenant()
              and service_user_id = public.soorma_service_user());

grant select, insert, delete on gateway.goal_spans to soorma_app;
