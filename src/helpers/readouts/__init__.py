"""Readouts of a model's internals: attention patterns, hidden states and head outputs, and what is
decodable from them (probes, geometry, selectivity, per-head decoders)."""
