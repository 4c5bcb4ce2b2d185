"""The S3 trigger with a callback sink to a test receiver, run in the local service's
workers (``tests.functional.kill_handlers.s3_with_callback``) by
:mod:`test_kills_mid_write_under_runtime`.

The receiver listens on 127.0.0.1 with a test CA, which the settings cannot express (the
SSRF guard refuses loopback, the default TLS context trusts no test CA), so the real
:class:`~amlproxy.sinks.callback.CallbackSink` is built here, at import (the init phase),
and added to the runtime's shared sinks, as ``tests/reliability/conftest.py``'s
``add_callback_sink`` does in-process. It sends every status (ok, rejected, failed), so
that every input row reaches the receiver, under the runtime's retry policy (the
invocation's deadline included).

Environment: ``LOCAL_CALLBACK_URL`` (https://127.0.0.1:PORT/...), ``LOCAL_CALLBACK_CA``
(the test CA's PEM file), ``LOCAL_CALLBACK_SECRET`` (a ``whsec_`` secret).
"""

from __future__ import annotations

import os
import ssl
from urllib.parse import urlsplit

from amlproxy.sinks.callback import CallbackSink
from amlproxy.triggers import s3
from amlproxy.triggers._runtime import get_runtime

_URL = os.environ["LOCAL_CALLBACK_URL"]
_runtime = get_runtime()
_runtime.pipeline.sinks.append(CallbackSink(
    _URL, secrets=[os.environ["LOCAL_CALLBACK_SECRET"]], statuses=("ok", "rejected", "failed"),
    retry_policy=_runtime.clients.retry_policy, allowed_ports=(urlsplit(_URL).port or 443,),
    allow_private=True, ssl_context=ssl.create_default_context(
        cafile=os.environ["LOCAL_CALLBACK_CA"])))

s3_with_callback = s3.handler
