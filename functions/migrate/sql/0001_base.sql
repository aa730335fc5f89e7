-- Extensions, schemas and the application role. Every function connects as soorma_app: no superuser and no
-- BYPASSRLS, so row-level security applies to it (DESIGN.md "Database").
create extension if not exists vector;

do $$
begin
  if not exists (select 1 from pg_roles where rolname = 'soorma_app') then
    create role soorma_app login nosuperuser nobypassrls nocreatedb nocreaterole password '{{app_role_password}}';
  end if;
end
$$;

create schema if not exists registry;
create schema if not exists memory;
create schema if not exists gateway;

grant usage on schema registry, memory, gateway to soorma_app;
alter default privileges in schema registry grant select, insert, update, delete on tables to soorma_app;
alter default privileges in schema memory grant select, insert, update, delete on tables to soorma_app;
alter default privileges in schema gateway grant select, insert, update, delete on tables to soorma_app;
alter default privileges in schema registry grant usage, select on sequences to soorma_app;
alter default privileges in schema memory grant usage, select on sequences to soorma_app;
alter default privileges in schema gateway grant usage, select on sequences to soorma_app;

-- The three identity settings read by every policy: helper functions keep the policies short and uniform.
create or replace function public.soorma_platform_tenant() returns text
  language sql stable as $$ select nullif(current_setting('soorma.platform_tenant_id', true), '') $$;
create or replace function public.soorma_service_tenant() returns text
  language sql stable as $$ select nullif(current_setting('soorma.service_tenant_id', true), '') $$;
create or replace function public.soorma_service_user() returns text
  language sql stable as $$ select nullif(current_setting('soorma.service_user_id', true), '') $$;
