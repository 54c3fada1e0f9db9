"""Linear and mixed models: spec → ANOVA/OLS → MME (PBLUP, GBLUP, ssGBLUP) → REML → evaluation."""

from bigeval.models.anova import anova, design_matrix, ols
from bigeval.models.mme import build_mme, load_relationship, model_data
from bigeval.models.reml import reml
from bigeval.linalg.selinv import inverse_diagonal, selected_inverse
from bigeval.models.solve import fit_mixed, solve
from bigeval.models.spec import ModelSpec, read_data

__all__ = ["ModelSpec", "read_data", "anova", "design_matrix", "ols", "build_mme",
           "load_relationship", "model_data", "fit_mixed", "solve", "reml",
           "selected_inverse", "inverse_diagonal"]
