"""Shared pytest configuration: dummy AWS credentials, and the server fixtures."""

from __future__ import annotations

import os

# Never reach real AWS: dummy credentials and a region for every boto3 client in the tests.
for _name, _value in {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}.items():
    os.environ[_name] = _value
os.environ.pop("AWS_PROFILE", None)
os.environ["AWS_CONFIG_FILE"] = os.devnull
os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull

pytest_plugins = ["tests.fixtures.emulator", "tests.fixtures.aws", "tests.fixtures.local"]
