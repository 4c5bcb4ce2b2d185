"""An emulator of SageMaker ``InvokeEndpoint`` and Amazon ML ``Predict`` endpoints.

It speaks the real wire protocols to real boto3 clients (``endpoint_url`` = the emulator's
URL; for Amazon ML also ``PredictEndpoint`` = that URL), scores records with the bundled
:class:`~amlproxy.localmodel.LogisticModel` and injects faults on demand: latency,
throttling, a requests-per-second limit, 5xx errors, timeouts, a not-ready window and
model errors, per endpoint, repeatable with a seed.

- protocols: :mod:`.aml`, :mod:`.sagemaker`; faults: :mod:`.faults`; counts: :mod:`.counts`
- admin API (``/_emulator/...``): :mod:`.admin`, and its client :class:`EmulatorAdmin`
- run it: ``amlproxy emulator serve`` / ``python -m amlproxy.emulator serve`` (:mod:`.cli`),
  or in-process with :func:`start_in_thread`.
"""

from amlproxy.emulator.client import EmulatorAdmin
from amlproxy.emulator.faults import Fault, FaultConfig
from amlproxy.emulator.server import EmulatorHandle, EmulatorServer, start_in_thread

__all__ = [
    "EmulatorAdmin",
    "EmulatorHandle",
    "EmulatorServer",
    "Fault",
    "FaultConfig",
    "start_in_thread",
]
