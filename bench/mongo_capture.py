"""Run a service module with a pymongo command listener that appends every read command it sends to a file.

    python bench/mongo_capture.py <file> <module>      (e.g. mailstream_inbox)

The benchmark replays exactly those commands through a plain synchronous pymongo client as the "database share"
of a request, whatever queries the service's code makes (so the replay follows the code as it changes). Writing a
line per command costs the service a few microseconds per query; it is the same in every run.
"""

import runpy
import sys

from bson import json_util
from pymongo import monitoring

READS = {"find", "aggregate", "count", "distinct", "getMore"}


class Capture(monitoring.CommandListener):
    def __init__(self, path: str) -> None:
        self.out = open(path, "a", buffering=1)  # noqa: SIM115 - lives as long as the process

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name in READS:
            record = {"db": event.database_name, "command": event.command}
            self.out.write(json_util.dumps(record, json_options=json_util.CANONICAL_JSON_OPTIONS) + "\n")

    def succeeded(self, event) -> None:
        pass

    def failed(self, event) -> None:
        pass


if __name__ == "__main__":
    path, module = sys.argv[1], sys.argv[2]
    monitoring.register(Capture(path))
    sys.argv = [module]
    runpy.run_module(module, run_name="__main__", alter_sys=True)
