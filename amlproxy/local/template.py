"""The SAM template's parameter defaults, read from ``sam/template.yaml`` itself.

The local stack is built "from the same parameters as the SAM template": its defaults are
the template's ``Parameters.*.Default`` values. The template is read when it is found next
to the package (a source checkout); an installed wheel carries no template, and then
:data:`TEMPLATE_DEFAULTS` is used: a copy of the defaults the local stack needs, which a
test keeps equal to the template.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

TEMPLATE_PATH = Path(__file__).resolve().parents[2] / "sam" / "template.yaml"

# The template's defaults for the parameters the local stack uses (checked by a test).
TEMPLATE_DEFAULTS: dict[str, str] = {
    "Backend": "sagemaker",
    "SageMakerEndpointName": "",
    "AmlModelId": "",
    "AmlPredictEndpoint": "",
    "Labels": "",
    "Schema": "census-income",
    "BackendConcurrency": "8",
    "InputPrefix": "input/",
    "OutputBucketName": "",
    "OutputPrefix": "output/",
    "RejectsPrefix": "rejects/",
    "ResultsTableName": "",
    "ResultsTtlDays": "",
    "ApiMaxBodyBytes": "1048576",
    "FunctionTimeout": "120",
    "QueueVisibilityTimeout": "720",
    "QueueMaxReceiveCount": "3",
    "SqsBatchSize": "10",
    "AsyncMaxRetryAttempts": "2",
    "LogLevel": "INFO",
    "IdempotencyTable": "enabled",
    "IdempotencyTtlSeconds": "3600",
}


# The template's ResultsTable key schema (checked by a test).
RESULTS_TABLE_KEYS: dict[str, Any] = {
    "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"},
                             {"AttributeName": "sk", "AttributeType": "N"}],
    "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                  {"AttributeName": "sk", "KeyType": "RANGE"}],
}


def read_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    """The template at ``path`` as a document (``{}`` when the file or PyYAML is missing);
    CloudFormation tags are read as the plain values they wrap."""
    try:
        import yaml  # type: ignore[import-untyped]
    except ImportError:  # PyYAML comes with moto[server]; without it, the copy is used
        return {}
    if not path.is_file():
        return {}

    def _any_tag(loader: Any, suffix: str, node: Any) -> Any:
        if isinstance(node, yaml.ScalarNode):
            return loader.construct_scalar(node)
        if isinstance(node, yaml.SequenceNode):
            return loader.construct_sequence(node)
        return loader.construct_mapping(node)

    # a SafeLoader that reads CloudFormation short-form tags (!Ref, !If...) as plain nodes
    cfn_loader: Any = type("CfnLoader", (yaml.SafeLoader,), {})
    cfn_loader.add_multi_constructor("!", _any_tag)
    document = yaml.load(path.read_text(encoding="utf-8"), Loader=cfn_loader)
    return document if isinstance(document, dict) else {}


def read_template_defaults(path: Path = TEMPLATE_PATH) -> dict[str, str]:
    """Every parameter default of the template at ``path``, as strings."""
    parameters: dict[str, Any] = read_template(path).get("Parameters") or {}
    return {
        name: str(spec["Default"])
        for name, spec in parameters.items()
        if isinstance(spec, dict) and "Default" in spec
    }


def template_defaults(path: Path = TEMPLATE_PATH) -> dict[str, str]:
    """The defaults the local stack starts from: the template's when it is readable, else
    :data:`TEMPLATE_DEFAULTS`."""
    found = read_template_defaults(path)
    return {**TEMPLATE_DEFAULTS, **found} if found else dict(TEMPLATE_DEFAULTS)


def results_table_keys(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    """``AttributeDefinitions`` and ``KeySchema`` of the template's ResultsTable."""
    resources: dict[str, Any] = read_template(path).get("Resources") or {}
    properties = (resources.get("ResultsTable") or {}).get("Properties") or {}
    if "KeySchema" in properties and "AttributeDefinitions" in properties:
        return {k: properties[k] for k in ("AttributeDefinitions", "KeySchema")}
    return RESULTS_TABLE_KEYS
