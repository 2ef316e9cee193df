"""Statistics of the book, one implementation of each: intervals for proportions
(:mod:`.intervals`), the bootstrap (:mod:`.bootstrap`), tests (:mod:`.tests`), permutation tests
(:mod:`.permutation`) and multiplicity (:mod:`.multiplicity`).  Pure NumPy/SciPy: imports nothing
else of the package.

The policy (claims.yaml, ``policy:``), alpha = 0.05:

* proportions: Wilson intervals; differences by Newcombe's hybrid score, for independent samples
  (:func:`.intervals.newcombe_diff`) and for two outcomes on the same trials
  (:func:`.intervals.paired_diff_ci`);
* means over prompts: percentile bootstrap (:func:`.bootstrap.bootstrap_means`), BCa for any other
  statistic (:func:`.bootstrap.bootstrap_ci`); with several seeds the seeds are the unit of
  replication and seeds and trials are both resampled (:func:`.bootstrap.two_way_bootstrap_means`,
  :func:`.bootstrap.two_way_bootstrap_diff`);
* families (heads, units, training-set sizes): Holm for tests and "significant" marks
  (:func:`.multiplicity.holm_significant`), Bonferroni for simultaneous intervals
  (:func:`.multiplicity.bonferroni_level`; for many heads with the bootstrap's standard error,
  :func:`.bootstrap.normal_interval`).  Benjamini-Hochberg is not used;
* permutation tests: p = (1 + #(null >= observed)) / (n_shuffles + 1), and at least
  :func:`.permutation.min_shuffles` shuffles (19 at alpha = 0.05), else inconclusive.
"""
