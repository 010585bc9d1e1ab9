"""Final training: one architecture trained on its data set's full training split, then tested.

``bayesnas train`` = ``run_train(resolve_config(...), run_dir)``: ``config`` (the configuration,
presets, ``resolve_config``), ``sources`` (what to train: an architecture string or an export),
``parts`` (data, network, evaluation), ``loop`` (the ``Trainer``), ``run`` (start or resume).
A run keeps a search's run-directory rules: config.json, metrics.jsonl, checkpoints and an
exact resume. It ends in an export-format folder
(``bayesnas.load_exported(run_dir)`` loads the network) and result.json. The test split is read
here and only here (a search never reads it), and scored once, at the end.
"""

from bayesnas.train.config import TrainConfig, resolve_config
from bayesnas.train.parts import build_model
from bayesnas.train.run import run_train

__all__ = ["TrainConfig", "build_model", "resolve_config", "run_train"]
