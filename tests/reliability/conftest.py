"""On a failure, attach the tail of every service's log and of the private database's log: the why is there."""

import pytest

from tests.e2e.conftest import System


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    crashable = item.funcargs.get("crashable") if hasattr(item, "funcargs") else None
    if report.failed and crashable is not None:
        system, server = crashable
        if isinstance(system, System):
            report.sections.append(("service logs", system.logs()))
        report.sections.append(("secantusd log", server.logs()))
    drill = item.funcargs.get("drill") if hasattr(item, "funcargs") else None
    if report.failed and drill is not None:  # the fault suite: its services, database and private RabbitMQ node
        system, server, rabbit, _ = drill
        report.sections.append(("service logs", system.logs()))
        report.sections.append(("secantusd log", server.logs()))
        report.sections.append(("rabbitmq node log", rabbit.logs()))
    return report
