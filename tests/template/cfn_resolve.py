"""The template tests' CloudFormation evaluator lives in :mod:`amlproxy.local.cfn` (the
local stack builds its resources and functions from the template with it)."""

from amlproxy.local.cfn import StackResolver, load_template

__all__ = ["StackResolver", "load_template"]
