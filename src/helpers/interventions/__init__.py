"""Interventions on a model's internals: head and layer ablations today; activation and path
patching, DCM and cross-model patching next."""
