"""Connections at scale, by design (issue 16 item 4): every platform function that connects to the database has a
reserved concurrency, and all of them at once, each execution environment holding its most
(:data:`soorma.functions.shared.capacity.CONNECTIONS_PER_ENVIRONMENT`), stay under the cluster's ``max_connections`` at its
configured maximum capacity, with room left for the superuser slots and an operator's session.

Aurora PostgreSQL's default ``max_connections`` is ``LEAST({DBInstanceClassMemory/9531392}, 5000)``
(https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/AuroraPostgreSQL.Managing.html#AuroraPostgreSQL.Managing.MaxConnections);
an Aurora Serverless v2 instance takes it from the memory of its maximum capacity, 2 GiB per ACU
(https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/aurora-serverless-v2.setting-capacity.html). The
instance's usable memory is less than that (the OS and Aurora's own processes), so the figure here is an upper
bound and the test keeps a margin of a quarter."""

from __future__ import annotations

import pytest

from soorma.functions.shared.capacity import CONNECTIONS_PER_ENVIRONMENT, connections_needed

GIB = 1024 ** 3
#: Room kept for superuser_reserved_connections, rds_superuser sessions and an operator's psql.
RESERVED_FOR_OPERATORS = 10
#: Fraction of the formula's figure the platform may plan to use (the instance's usable memory is below 2 GiB/ACU).
USABLE = 0.75


def max_connections(acu: float) -> int:
    """Aurora PostgreSQL's default ``max_connections`` for an instance with ``acu`` ACUs of memory."""
    return min(int(acu * 2 * GIB / 9531392), 5000)


def database_functions(synth) -> dict[str, dict]:
    """The functions that open database connections: those given a database secret."""
    return {fid: fn["Properties"] for fid, fn in synth.of_type("AWS::Lambda::Function").items()
            if {"SOORMA_APP_DB_SECRET_ARN", "SOORMA_OWNER_DB_SECRET_ARN"}
            & set(fn["Properties"].get("Environment", {}).get("Variables", {}))}


def test_every_database_function_has_a_reserved_concurrency(synth):
    functions = database_functions(synth)
    assert len(functions) >= 6, sorted(functions)  # registry, memory, gateway, authorizer, tracker, migrate, ...
    unbounded = [fid for fid, props in functions.items() if not props.get("ReservedConcurrentExecutions")]
    assert not unbounded, f"no reserved concurrency, so no bound on their connections: {unbounded}"


def test_all_environments_at_once_fit_in_max_connections_at_maximum_capacity(synth):
    (cluster,) = synth.of_type("AWS::RDS::DBCluster").values()
    max_acu = float(cluster["Properties"]["ServerlessV2ScalingConfiguration"]["MaxCapacity"])
    functions = database_functions(synth)
    environments = sum(int(props["ReservedConcurrentExecutions"]) for props in functions.values())
    needed = environments * CONNECTIONS_PER_ENVIRONMENT
    assert needed == connections_needed()  # the default deployment runs at the shared table's concurrency
    budget = int(max_connections(max_acu) * USABLE) - RESERVED_FOR_OPERATORS
    print(f"{environments} execution environments x {CONNECTIONS_PER_ENVIRONMENT} connections = {needed} "
          f"<= {budget} (max_connections ~{max_connections(max_acu)} at {max_acu:g} ACU)")
    assert needed <= budget


@pytest.mark.parametrize("acu, expected", [(1, 225), (4, 901), (64, 5000)])
def test_the_max_connections_formula(acu, expected):
    assert max_connections(acu) == expected
