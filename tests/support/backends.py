"""Which RabbitMQ and MongoDB the tests run against.

1. `AMQP_URL` / `MONGODB_URI` set (scripts/test.sh sets them to the local RabbitMQ and SecantusDB): use those.
2. Otherwise, where a Docker engine answers: real RabbitMQ and MongoDB through testcontainers.
3. Otherwise fail loudly: a test that silently skips its back-end would prove nothing.

Each test session gets its own RabbitMQ virtual host (when `rabbitmqctl` can make one) and its own database name,
so leftovers of a dev run or an earlier session never leak into the tests.
"""

import contextlib
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import quote, urlsplit, urlunsplit

from pymongo import MongoClient


@dataclass(frozen=True)
class Backends:
    amqp_url: str
    mongodb_uri: str
    database: str
    description: str


def _docker_available() -> bool:
    with contextlib.suppress(Exception):
        import docker

        docker.from_env().ping()
        return True
    return False


def _describe_mongo(uri: str) -> str:
    with MongoClient(uri, serverSelectionTimeoutMS=5000) as client:
        info = client.admin.command("buildInfo")
    # SecantusDB answers MongoDB's version (7.0.0) and adds its own: name the server that really ran.
    secantus = info.get("secantusVersion")
    return f"SecantusDB {secantus}" if secantus else f"MongoDB {info.get('version')}"


@contextlib.contextmanager
def isolated_vhost(amqp_url: str) -> Iterator[str]:
    """A throwaway vhost on a local broker; the URL unchanged where rabbitmqctl cannot manage it.

    Give one to every group of tests that runs real service processes: durable queues outlive a test, and work
    left queued by one group (a retry of a reply, say) would otherwise reach the next group's processes.
    """
    parts = urlsplit(amqp_url)
    if parts.hostname not in ("127.0.0.1", "localhost") or not shutil.which("rabbitmqctl"):
        yield amqp_url
        return
    name = f"mailstream-test-{uuid.uuid4().hex[:8]}"
    user = parts.username or "guest"
    subprocess.run(["rabbitmqctl", "-q", "add_vhost", name], check=True, capture_output=True)
    subprocess.run(
        ["rabbitmqctl", "-q", "set_permissions", "-p", name, user, ".*", ".*", ".*"], check=True, capture_output=True
    )
    try:
        yield urlunsplit(parts._replace(path="/" + quote(name, safe="")))
    finally:
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", name], check=False, capture_output=True)


_vhost = isolated_vhost


@contextlib.contextmanager
def provide(amqp_url: str | None, mongodb_uri: str | None) -> Iterator[Backends]:
    database = f"mailstream_test_{uuid.uuid4().hex[:8]}"
    with contextlib.ExitStack() as stack:
        if not (amqp_url and mongodb_uri):
            if not _docker_available():
                raise RuntimeError(
                    "No broker/database: set AMQP_URL and MONGODB_URI (scripts/test.sh does) or run a Docker engine"
                )
            from testcontainers.mongodb import MongoDbContainer
            from testcontainers.rabbitmq import RabbitMqContainer

            if not amqp_url:
                rabbit = stack.enter_context(RabbitMqContainer("rabbitmq:3.13"))
                amqp_url = f"amqp://guest:guest@{rabbit.get_container_host_ip()}:{rabbit.get_exposed_port(5672)}/"
            if not mongodb_uri:
                mongo = stack.enter_context(MongoDbContainer("mongo:7"))
                mongodb_uri = mongo.get_connection_url()
        amqp_url = stack.enter_context(isolated_vhost(amqp_url))
        description = f"{_describe_mongo(mongodb_uri)} at {urlsplit(mongodb_uri).netloc.split('@')[-1]}, "
        description += f"RabbitMQ at {urlsplit(amqp_url).netloc.split('@')[-1]}{urlsplit(amqp_url).path}"
        try:
            yield Backends(amqp_url, mongodb_uri, database, description)
        finally:
            with contextlib.suppress(Exception), MongoClient(mongodb_uri, serverSelectionTimeoutMS=3000) as client:
                for name in client.list_database_names():
                    if name.startswith(database):
                        client.drop_database(name)
