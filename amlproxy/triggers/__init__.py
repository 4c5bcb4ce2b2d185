"""The Lambda entry points, one thin module per event source.

=====================================  ==================================================
handler                                event
=====================================  ==================================================
``amlproxy.triggers.s3.handler``       ``s3:ObjectCreated:*`` (an input object)
``amlproxy.triggers.sns.handler``      SNS notifications (records or an S3 pointer)
``amlproxy.triggers.sqs.handler``      SQS batches, with partial batch failures
``amlproxy.triggers.api.handler``      API Gateway REST / HTTP API, function URLs, ALB
=====================================  ==================================================

Each checks that the event is its own (:mod:`amlproxy.triggers._events`: any other kind
raises :class:`~amlproxy.errors.UnsupportedEventError`), runs the pipeline built once per
process, in Lambda's init phase (:mod:`amlproxy.triggers._runtime`), and answers in the
shape its source expects.
"""
