"""Interventions on a model's internals: head and layer ablations (ablation.py, effects.py),
activation patching (patching.py, metrics.py), path patching (path_patching.py), circuit
evaluation (circuits.py), desiderata-based component masking (dcm.py) and cross-model activation
patching (cmap.py)."""
