"""A throwaway Postfix for bench/ingest_smtp.py: the durable-accept baseline a user would otherwise deploy.

Its own config and queue directory in a temporary folder, log in `maillog` there, the SMTP listener on a high
loopback port, every recipient of the bench domain delivered to `discard:`. Postfix's cleanup daemon fsyncs the
queue file before smtpd answers 250, so this is "on disk before 250", like ingest's confirm. `in_flow_delay = 0`
and no connection-count limit: Postfix accepts as fast as it can (no throttling in its favour or against it).

    with postfix_instance(port, domain) as maillog: ...   # needs root and Debian's postfix
"""

import contextlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
pickup unix n - n 60 1 pickup
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
"""


def main_cf(folder: Path, domain: str) -> str:
    return f"""\
compatibility_level = 3.6
queue_directory = {folder}/queue
data_directory = {folder}/data
maillog_file = {folder}/maillog
maillog_file_prefixes = {folder}
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix.bench.test
mydestination = {domain}
local_recipient_maps =
local_transport = discard:
default_transport = discard:
alias_maps =
alias_database =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_peername_lookup = no
disable_dns_lookups = yes
smtpd_client_connection_count_limit = 0
in_flow_delay = 0
default_process_limit = 200
biff = no
"""


@contextlib.contextmanager
def postfix_instance(port: int, domain: str) -> Iterator[Path]:
    """Start Postfix on 127.0.0.1:`port`; yields the path of its maillog; stops it and removes its folder."""
    folder = Path(tempfile.mkdtemp(prefix="mailstream-bench-postfix-"))
    folder.chmod(0o755)
    config = folder / "conf"
    config.mkdir()
    (config / "main.cf").write_text(main_cf(folder, domain))
    (config / "master.cf").write_text(MASTER_CF.format(port=port))
    (folder / "queue").mkdir()  # owned by root, as postfix check insists
    (folder / "data").mkdir()
    shutil.chown(folder / "data", "postfix")
    try:
        subprocess.run(["postfix", "-c", str(config), "check"], check=True, capture_output=True, timeout=60)
        subprocess.run(["postfix", "-c", str(config), "start"], check=True, capture_output=True, timeout=60)
        yield folder / "maillog"
    finally:
        subprocess.run(["postfix", "-c", str(config), "stop"], check=False, capture_output=True, timeout=60)
        shutil.rmtree(folder, ignore_errors=True)
