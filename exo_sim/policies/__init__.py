"""Eviction policies, one per module, found through a registry (never an if/elif chain).

A module in this package registers its class with :func:`register`; adding a policy is adding one
file here (and one YAML option under ``conf/policy/``).
"""

from __future__ import annotations

from exo_sim.policies.base import NEVER, Policy, PolicyInvariantError
from exo_sim.registry import Registry

__all__ = ["NEVER", "Policy", "PolicyInvariantError", "get_policy", "policy_names", "register"]

POLICIES: Registry[Policy] = Registry("policy", "name", __name__)
register = POLICIES.register_as
"""Class decorator: ``@register("lru")`` registers a :class:`Policy` subclass under that name."""


def policy_names() -> list[str]:
    """Names of every registered policy, sorted."""
    return POLICIES.names()


def get_policy(name: str) -> type[Policy]:
    """The policy class registered as ``name``; ``KeyError`` naming the known ones if absent."""
    return POLICIES.get(name)
