"""The local stack: moto server, the endpoint emulator, the resources of the SAM template,
the event sources and the local API, in one process, started and stopped together.

    stack = LocalDeployment(load_config())
    endpoints = stack.start()        # {"api": "http://127.0.0.1:8080", "aws": ..., ...}
    ...
    stack.stop()
"""

from __future__ import annotations

import logging
import os
import socket
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from amlproxy.errors import ConfigurationError
from amlproxy.local.api_server import ApiServerThread, LocalApi, api_limits
from amlproxy.local.config import REGION, StackConfig
from amlproxy.local.pollers import (
    QueuePoller,
    S3Notifications,
    SnsDeliveries,
    SqsEventSource,
)
from amlproxy.local.resources import StackResources, create_resources

log = logging.getLogger("amlproxy.local")

DUMMY_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
}
EXAMPLE_RECORDS: dict[str, dict[str, Any]] = {
    "census-income": {
        "age": 39, "workclass": "State-gov", "fnlwgt": 77516, "education": "Bachelors",
        "education-num": 13, "marital-status": "Never-married", "occupation": "Adm-clerical",
        "relationship": "Not-in-family", "race": "White", "sex": "Male", "capital-gain": 2174,
        "capital-loss": 0, "hours-per-week": 40, "native-country": "United-States",
    },
}


class LocalDeployment:
    """Everything ``amlproxy local up`` runs. Not reentrant: one per process, since the
    functions read their settings from this process's environment."""

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.endpoints: dict[str, str] = {}
        self.resources: StackResources | None = None
        self._moto: Any = None
        self._emulator: Any = None
        self._api: ApiServerThread | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._pollers: list[QueuePoller] = []

    def start(self) -> dict[str, str]:
        """Start every part; return the endpoints. On failure, what started is stopped."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self.endpoints

    def _start(self) -> None:
        from moto.server import ThreadedMotoServer

        from amlproxy.emulator import start_in_thread

        config = self.config
        # Never reach real AWS: dummy credentials, and every client has an endpoint URL.
        os.environ.update(DUMMY_CREDENTIALS)
        os.environ.pop("AWS_PROFILE", None)
        for noisy in ("werkzeug", "botocore.credentials"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        _check_free(config.host, config.moto_port, "--aws-port / moto_port")
        self._moto = ThreadedMotoServer(ip_address=config.host, port=config.moto_port,
                                        verbose=False)
        self._moto.start()
        host, port = self._moto.get_host_and_port()
        moto_url = f"http://{host}:{port}"
        self._emulator = start_in_thread(host=config.host, port=config.emulator_port)
        emulator_url: str = self._emulator.url

        os.environ.update(config.function_environment(moto_url=moto_url,
                                                      emulator_url=emulator_url))
        from amlproxy.triggers import api, s3, sns, sqs
        from amlproxy.triggers._runtime import get_runtime, reset_runtime

        reset_runtime()
        runtime = get_runtime()  # built now: a configuration error stops `up` at once
        clients = {name: _client(name, moto_url) for name in ("s3", "sqs", "sns", "dynamodb")}
        self.resources = res = create_resources(config, clients)

        retries = int(config.param("AsyncMaxRetryAttempts"))
        notifications = S3Notifications(_client("sqs", moto_url), res.s3_events_queue_url,
                                        s3.handler, retries=retries,
                                        failure_queue_url=res.failure_queue_url)
        deliveries = SnsDeliveries(_client("sqs", moto_url), res.sns_deliveries_queue_url,
                                   sns.handler, retries=retries,
                                   failure_queue_url=res.failure_queue_url)
        deliveries.subscription_arn = res.sns_subscription_arn
        work = SqsEventSource(_client("sqs", moto_url), res.work_queue_url, sqs.handler,
                              queue_arn=res.work_queue_arn,
                              batch_size=int(config.param("SqsBatchSize")))
        self._pollers = [notifications, deliveries, work]
        for poller in self._pollers:
            poller.start()

        self._pool = ThreadPoolExecutor(config.workers, thread_name_prefix="amlproxy-api")
        app = LocalApi(api.handler, self._pool, runtime.schema,
                       EXAMPLE_RECORDS.get(runtime.schema.name))
        limits = api_limits(runtime.settings.api_max_body_bytes)
        self._api = ApiServerThread(app, config.host, config.api_port, limits=limits)
        api_url = self._api.start()
        self.endpoints = {"api": api_url, "aws": moto_url, "emulator": emulator_url}

    def stop(self) -> None:
        """Stop every part (idempotent): the API first, then the pollers, the functions'
        runtime, the emulator and moto."""
        if self._api is not None:
            self._api.stop()
            self._api = None
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        for poller in self._pollers:
            poller.stop()
        for poller in self._pollers:
            poller.join(10.0)
        self._pollers = []
        from amlproxy.triggers._runtime import reset_runtime

        reset_runtime()
        if self._emulator is not None:
            self._emulator.stop()
            self._emulator = None
        if self._moto is not None:
            self._moto.stop()
            self._moto = None


def _check_free(host: str, port: int, option: str) -> None:
    """moto's server thread exits quietly on a busy port: check it first."""
    if port == 0:
        return
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise ConfigurationError(f"cannot listen on {host}:{port} ({exc.strerror}): "
                                     f"choose another port with {option} (0: a free one)"
                                     ) from None


def _client(service: str, endpoint_url: str) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(retries={"total_max_attempts": 3, "mode": "standard"},
                    s3={"addressing_style": "path"})
    return boto3.session.Session().client(service, endpoint_url=endpoint_url,  # type: ignore[call-overload]
                                          region_name=REGION, config=config)
