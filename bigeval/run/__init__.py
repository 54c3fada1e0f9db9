"""The routine evaluation run: ``bigeval run CONFIG.toml``.

One configuration file (:mod:`bigeval.run.config`) names the inputs, parameters, an optional
model, the cluster and the output folder; the stages validate → prepare → relationships →
(solve) → reliabilities → report (:mod:`bigeval.run.stages`) run in order, each checkpointed
with the hash of its inputs (:mod:`bigeval.run.checkpoint`), so a rerun reuses what has not
changed and a killed run resumes (:mod:`bigeval.run.pipeline`). Every run writes a manifest
(:mod:`bigeval.run.manifest`) and an HTML report (:mod:`bigeval.run.report`).
"""

from bigeval.run.config import RunConfig, config_from_dict, load_config, template
from bigeval.run.pipeline import STAGE_NAMES, RunResult, run_pipeline

__all__ = ["RunConfig", "RunResult", "STAGE_NAMES", "config_from_dict", "load_config",
           "run_pipeline", "template"]
