r"""Robustness analysis of implicit models (theory §7, [IDL §4, §7.3], [NEMON]).

* :mod:`~lifted_idl.robustness.bounds`: sensitivity matrix, state box and cardinality bounds,
  Lipschitz constants;
* :mod:`~lifted_idl.robustness.lp`: the LP relaxation of [IDL Thm 4.3] (ReLU), built once with
  cvxpy Parameters and re-solved per objective and per input;
* :mod:`~lifted_idl.robustness.attacks`: sparse sensitivity-matrix and gradient attacks;
* :mod:`~lifted_idl.robustness.certify`: certified radii and certified accuracy;
* :mod:`~lifted_idl.robustness.penalties`: Lipschitz and sensitivity penalties for robust
  training (the ``model_penalty`` of :func:`~lifted_idl.training.gradient.fit_gradient`).

Every function accepts an :class:`~lifted_idl.ImplicitModel` or a fitted estimator (read
through its ``model_``). For estimators, labels are in the estimator's ``classes_``; for an
ImplicitModel, labels are output indices.
"""

from .attacks import (
    AttackResult,
    attack_success_rate,
    gradient_attack,
    input_gradient,
    sensitivity_attack,
)
from .bounds import lipschitz_bound, pairwise_sensitivity, sensitivity_matrix, state_box_bound
from .certify import certified_accuracy, certified_radius, lp_certify
from .lp import (
    LPAttackResult,
    LPRelaxation,
    LPResult,
    lp_attack,
    lp_output_bound,
    lp_state_bound,
)
from .penalties import (
    InputScaledPenalty,
    LipschitzSurrogatePenalty,
    SensitivityPenalty,
)

__all__ = [
    "sensitivity_matrix",
    "pairwise_sensitivity",
    "state_box_bound",
    "lipschitz_bound",
    "LPRelaxation",
    "LPResult",
    "LPAttackResult",
    "lp_state_bound",
    "lp_output_bound",
    "lp_attack",
    "AttackResult",
    "sensitivity_attack",
    "gradient_attack",
    "input_gradient",
    "attack_success_rate",
    "certified_radius",
    "lp_certify",
    "certified_accuracy",
    "LipschitzSurrogatePenalty",
    "SensitivityPenalty",
    "InputScaledPenalty",
]
