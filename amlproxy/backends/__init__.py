"""Prediction backends: one small module per backend, each implementing core.ports.Backend."""
