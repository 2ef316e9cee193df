"""Tasks as text prompts, behind one protocol (:mod:`.base`: :class:`.base.Task`, :class:`.base.Trial`,
counterfactual pairs, token offsets): the context-dependent decision task (:mod:`.decision`, with
token types in :mod:`.tokens`), Prakash et al.'s entity tracking (:mod:`.entity`) and synthetic
arithmetic (:mod:`.arithmetic`)."""
