"""The whole serverless flow on one machine, without Docker: ``amlproxy local up``.

moto server (S3, SNS, SQS, DynamoDB) with the resources of ``sam/template.yaml``, the
endpoint emulator, and the Lambda functions run in this process, fed by the event sources
of :mod:`.pollers` in the real Lambda event shapes (:mod:`.events`), and a local API
(:mod:`.api_server`: HTTP -> API Gateway HTTP API events) with a playground page.

- configuration: :mod:`.config` (TOML, SAM parameters) and :mod:`.template`
- resources in moto: :mod:`.resources`; the whole stack: :class:`LocalDeployment` (:mod:`.stack`)
- the command: :mod:`.cli`; walkthrough: docs/local.md
"""

from amlproxy.local.config import StackConfig, load_config

__all__ = ["StackConfig", "load_config"]
