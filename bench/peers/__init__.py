"""The peers ``make bench`` compares amlproxy with: what a user would write instead.

- :mod:`peers.census_model`: a hand-written pydantic model of the census record, with the
  rules of schemas/census-income.schema (stripped strings, ``?`` missing, categories,
  ranges, no NaN, no unknown field);
- :mod:`peers.pydantic_direct`: a loop over csv.reader rows with ``model_validate``;
- :mod:`peers.powertools` and ``peers.powertools_<trigger>``: Lambda handlers written with
  Powertools for AWS Lambda (Parser,
  Logger, Metrics; the event handler for the API);
- :mod:`peers.minimal`: the least a handler can import: boto3 and its clients;
- bare boto3 loops live next to the benchmarks that use them.

None of this is amlproxy's code, and amlproxy never imports it. aws-lambda-powertools is
a bench dependency (the ``bench`` extra), never a runtime one.
"""
