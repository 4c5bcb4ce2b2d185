"""The pure core: schema, records, predictions, ports, pipeline and retry policy.

Nothing in here imports a trigger, a backend or a sink.
"""
