-- Admission of the platform's own agents (issue 12, finding 11): principals of role 'agent' (the credential an agent
-- function is given when it is deployed) are admitted by their own bucket, with the deployment's agent limits, and do
-- not draw from the platform tenant's bucket or obey a tenant's per-key override.
--
-- Why: an agent's calls are the work of goals and events already admitted at the edge (POST /v1/goals and
-- /v1/events/publish by outside callers take tokens from their key's and their tenant's bucket). Throttling that
-- downstream work with limits meant for outside callers loses it half-done (a publish refused, an idempotency record
-- left held, a goal that never ends). Kubernetes' API Priority and Fairness keeps system components in priority
-- levels of their own for the same reason; AWS throttles at the front door (API Gateway usage plans), not between a
-- service's own components. The agent bucket still exists (a runaway or leaked agent key is bounded), and the
-- revocation and suspension checks are the same as gateway.admit's.
create function gateway.admit_agent(p_platform_tenant_id text, p_key_bucket text, p_key_id text,
                                    p_rps double precision, p_burst double precision)
  returns table (verdict text, retry_after double precision)
  language plpgsql volatile security definer set search_path = pg_catalog, pg_temp as $$
declare
  t record;
  k record;
  available double precision;
  bucket_rate double precision;
begin
  select status into t from gateway.tenants where platform_tenant_id = p_platform_tenant_id;
  if found and t.status <> 'active' then
    return query select 'suspended'::text, 0::double precision;
    return;
  end if;
  if p_key_id is not null and p_key_id <> '' then
    select revoked_at, expires_at into k from gateway.api_keys where key_id = p_key_id;
    if not found or k.revoked_at is not null or (k.expires_at is not null and k.expires_at <= now()) then
      return query select 'revoked'::text, 0::double precision;
      return;
    end if;
  end if;
  insert into gateway.rate_buckets as b (bucket, platform_tenant_id, tokens, capacity, rate, updated_at)
  values ('a:' || p_key_bucket, p_platform_tenant_id, p_burst, p_burst, p_rps, clock_timestamp())
  on conflict (bucket) do update set capacity = excluded.capacity, rate = excluded.rate
  returning b.rate,
            least(b.capacity, b.tokens + greatest(0, extract(epoch from clock_timestamp() - b.updated_at)) * b.rate)
    into bucket_rate, available;
  if available < 1 then
    return query select 'limited'::text, greatest((1 - available) / bucket_rate, 0.001);
    return;
  end if;
  update gateway.rate_buckets b
     set tokens = available - 1, allowed = true, updated_at = greatest(b.updated_at, clock_timestamp())
   where b.bucket = 'a:' || p_key_bucket;
  return query select 'ok'::text, 0::double precision;
end
$$;
revoke all on function gateway.admit_agent(text, text, text, double precision, double precision) from public;
grant execute on function gateway.admit_agent(text, text, text, double precision, double precision) to soorma_app;
