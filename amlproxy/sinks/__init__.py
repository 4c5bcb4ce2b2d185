"""Sinks: where outcomes go. One small module per medium, each implementing
:class:`amlproxy.core.ports.Sink`."""
