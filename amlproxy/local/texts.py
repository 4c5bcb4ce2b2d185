"""What ``amlproxy local`` prints for people: the banner of ``up`` and the text of
``status`` (``--json`` prints the data itself)."""

from __future__ import annotations

from typing import Any

from amlproxy.local.config import REGION
from amlproxy.local.progress import progress_lines

READY_LINE = "amlproxy local stack is up"


def banner(state: dict[str, Any], input_prefix: str) -> str:
    """What ``up`` prints: the endpoints, then commands to try."""
    e, r = state["endpoints"], state["resources"]
    aws = f"aws --endpoint-url {e['aws']} --region {REGION}"
    sample = '{"age": 39, "workclass": "State-gov", "fnlwgt": 77516, "education": ' \
        '"Bachelors", "education-num": 13, "marital-status": "Never-married", ' \
        '"occupation": "Adm-clerical", "relationship": "Not-in-family", "race": "White", ' \
        '"sex": "Male", "capital-gain": 2174, "capital-loss": 0, "hours-per-week": 40, ' \
        '"native-country": "United-States"}'
    return "\n".join([
        f"{READY_LINE} (pid {state['pid']}; Ctrl-C or `amlproxy local down` stops it)",
        f"  api       {e['api']}",
        f"  aws       {e['aws']}",
        f"  emulator  {e['emulator']}",
        f"  lambda    {e['lambda']}",
        f"  runtime   {state['runtime_client']} (functions: {', '.join(state['functions'])})",
        f"  playground {e['api']}/",
        f"  input     s3://{r['input_bucket']}/{input_prefix}",
        f"  output    s3://{r['output_bucket']}/",
        f"  table     {r['table']}",
        f"  topic     {r['topic_arn']}",
        f"  queue     {r['work_queue_url']}",
        f"  ingest    {r.get('ingest_queue_url', '')} (S3 -> the S3 function)",
        f"  chunks    {r.get('chunk_queue_url', '')} (-> the chunk workers)",
        f"  progress  {r.get('chunk_table', '')} (amlproxy local progress)",
        f"  completed {r.get('completion_topic_arn', '')}",
        "Try (any credentials; e.g. export AWS_ACCESS_KEY_ID=testing "
        "AWS_SECRET_ACCESS_KEY=testing):",
        f"  {aws} s3 cp examples/census-income-sample.csv "
        f"s3://{r['input_bucket']}/{input_prefix}",
        f"  curl -s -X POST {e['api']}/predict -H 'content-type: application/json' "
        f"-d '{sample}'",
        f"  {aws} sns publish --topic-arn {r['topic_arn']} --message '{sample}'",
        f"  {aws} sqs send-message --queue-url {r['work_queue_url']} --message-body "
        f"'{sample}'",
        f"  {aws} s3 ls --recursive s3://{r['output_bucket']}/",
        f"  {aws} dynamodb scan --table-name {r['table']}",
    ])


def status_text(state: dict[str, Any], live: dict[str, Any]) -> str:
    """``status`` for people: the endpoints, then one line per function and queue."""
    lines = [f"local stack pid {state['pid']}, runtime client "
             f"{live.get('runtime_client', state.get('runtime_client'))}"]
    lines += [f"  {name:<9} {url}" for name, url in state["endpoints"].items()]
    if "error" in live:
        return "\n".join([*lines, live["error"]])
    counts = ("invocations", "cold_starts", "errors", "timeouts", "crashes", "chaos_kills",
              "init_errors", "throttles", "async_retries", "on_failure")
    lines.append(f"  {'function':<14} {'workers':>7} " + " ".join(
        f"{c.replace('_', '-'):>11}" for c in counts))
    for name, function in live["functions"].items():
        busy = sum(w["busy"] for w in function["workers"])
        workers = f"{busy}/{len(function['workers'])}"
        lines.append(f"  {name:<14} {workers:>7} " + " ".join(f"{function[c]:>11}"
                                                            for c in counts))
    lines.append(f"  {'queue':<22} {'visible':>8} {'in flight':>10}")
    for name, depth in live["queues"].items():
        lines.append(f"  {name:<22} {depth.get('ApproximateNumberOfMessages', '?'):>8} "
                     f"{depth.get('ApproximateNumberOfMessagesNotVisible', '?'):>10}")
    objects = live.get("objects", [])
    if isinstance(objects, list):
        lines += ["  objects scored in chunks (amlproxy local progress [S3-URI]):",
                  *progress_lines(objects)]
    return "\n".join(lines)
