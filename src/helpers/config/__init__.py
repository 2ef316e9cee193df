"""Typed parameters (:mod:`.parameters`) and profiles (:mod:`.profiles`)."""
