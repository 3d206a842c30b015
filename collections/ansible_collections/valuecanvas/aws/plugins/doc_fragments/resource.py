"""The options every present-or-absent module of this collection shares: the resource's
tags and its state. A module lists ``valuecanvas.aws.resource`` in
``extends_documentation_fragment``, after amazon.aws's connection fragments."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  tags:
    description:
      - Tags on the resource. Where the resource is found by a Name tag, Name is added.
      - Where AWS takes tags only at creation, they are set then and not changed after.
    type: dict
    default: {}
  state:
    description: present or absent.
    type: str
    choices: [present, absent]
    default: present
"""
