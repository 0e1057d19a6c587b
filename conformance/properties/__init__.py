"""The property catalogue of spec/properties.md as hypothesis checks, one module per family.

Each module registers its checks with ``conformance.registry.check``; the module list is
``conformance.registry.PROPERTY_MODULES``.
"""
