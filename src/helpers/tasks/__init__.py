"""Tasks as text prompts: the context-dependent decision task today (:mod:`.decision`, with token
types in :mod:`.tokens`); the :class:`.base.Task` protocol that a second task implements."""
