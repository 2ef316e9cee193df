"""Verdicts: each claim of the papers turned into replicated / not replicated / inconclusive by a
function of the measured numbers and their intervals.  Takes tables; imports only :mod:`helpers.stats`."""
