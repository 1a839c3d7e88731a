"""Session fixtures: one real control plane, Redis and PostgreSQL for the whole run, started on first use."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from clawhost_localcluster.environment import Cluster, Environment, local_environment


@pytest.fixture(scope="session")
def environment() -> Iterator[Environment]:
    with local_environment() as env:
        yield env


@pytest.fixture(scope="session")
def cluster(environment: Environment) -> Cluster:
    return environment.cluster


@pytest.fixture(scope="session")
def redis_url(environment: Environment) -> str:
    return environment.redis.url


@pytest.fixture(scope="session")
def postgres_dsn(environment: Environment) -> str:
    return environment.postgres.dsn


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    """A fresh namespace for one test, deleted afterwards (without waiting)."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)
