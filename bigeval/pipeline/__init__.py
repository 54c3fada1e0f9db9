"""The routine evaluation run: ``bigeval run CONFIG.toml``.

One configuration file (:mod:`bigeval.pipeline.config`) names the inputs, parameters, an optional
model, the cluster and the output folder; the stages validate → prepare → relationships →
(solve) → reliabilities → report (:mod:`bigeval.pipeline.stages`) run in order, each checkpointed
with the hash of its inputs (:mod:`bigeval.pipeline.checkpoint`), so a rerun reuses what has not
changed and a killed run resumes (:mod:`bigeval.pipeline.runner`). Every run writes a manifest
(:mod:`bigeval.pipeline.manifest`) and an HTML report (:mod:`bigeval.pipeline.report`).
"""

from bigeval.pipeline.config import RunConfig, config_from_dict, load_config, template
from bigeval.pipeline.runner import STAGE_NAMES, RunResult, run_pipeline

__all__ = ["RunConfig", "RunResult", "STAGE_NAMES", "config_from_dict", "load_config",
           "run_pipeline", "template"]
