"""``[core] hostname_callable`` of the Celery test's workers: the name in ``$COS_TEST_WORKER_NAME``.

Both workers run on one machine; a name each makes the try that ran on each visible in the task
instance's history (``hostname``), as two machines would.
"""

from __future__ import annotations

import os
import socket


def worker_hostname() -> str:
    return os.environ.get("COS_TEST_WORKER_NAME") or socket.getfqdn()
