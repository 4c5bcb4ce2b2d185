"""The minimal peer: a handler that imports boto3 and makes its clients, nothing else (the
floor of a cold start)."""

from __future__ import annotations

import os

import boto3

_session = boto3.session.Session()
_ENDPOINT_URL = os.environ.get("PEER_ENDPOINT_URL") or None
sagemaker = _session.client("sagemaker-runtime", endpoint_url=_ENDPOINT_URL)
storage = _session.client(os.environ.get("PEER_OUTPUT", "s3"), endpoint_url=_ENDPOINT_URL)
