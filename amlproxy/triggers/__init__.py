"""The Lambda entry points, one thin module per event source.

=====================================  ==================================================
handler                                event
=====================================  ==================================================
``amlproxy.triggers.s3.handler``       ``s3:ObjectCreated:*`` (an input object)
``amlproxy.triggers.sns.handler``      SNS notifications (records or an S3 pointer)
``amlproxy.triggers.sqs.handler``      SQS batches, with partial batch failures
``amlproxy.triggers.api.handler``      API Gateway REST / HTTP API, function URLs
=====================================  ==================================================

Each parses its event, runs the pipeline built once per cold start
(:mod:`amlproxy.triggers._runtime`) and answers in the shape its source expects.
"""
