"""Model sources (:mod:`.sources`), the one architecture adapter with typed hook points
(:mod:`.arch`), and scoring at the answer position (:mod:`.scoring`)."""
