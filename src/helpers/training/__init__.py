"""Training runs as cached artifacts: the engine (:mod:`.engine`), runs (:mod:`.runs`), their
summaries (:mod:`.evaluation`), grid searches and learning curves (:mod:`.experiments`)."""
