"""Scikit-learn estimators around graph networks: CGCNNRegressor, CGCNNClassifier,
ALIGNNRegressor and ALIGNNClassifier.

All take pymatgen Structures (a list, a pandas Series, a DataFrame with a ``structure``
column) or the crystal graphs made by
:class:`~crysatom_featurizers.graphs.CrystalGraphTransformer`, and any element embedding of
the registry as input node features (CrysAtom by default, frozen, as in the CrysAtom paper,
Section 3.3).

How training runs
-----------------
``fit`` builds every crystal graph once and packs all graphs into a few flat tensors with
per-crystal offsets; the Gaussian expansion of the edge lengths is computed once too (per batch
instead when the table would exceed 512 MiB). A mini-batch is then gathered with a handful of
vectorised index operations instead of collating ``Data`` objects one by one, so an epoch
costs little more than the forward and backward passes. The optimiser is Adam (CrysAtom paper,
Table 2, middle block); see the ``lr`` parameter for how this relates to the original CGCNN
defaults. The epochs themselves run in :func:`crysatom_featurizers.nn.train.train_model`; this
package holds the scikit-learn surface (parameters, input and target checks, ``fit``,
``predict``).

How an estimator is made
------------------------
Each estimator is a task mixin (regression or classification: targets, loss, metric, ``fit``,
``predict``), a model base that builds its network and checks its own parameters, and the
graph-estimator base that holds the rest (input handling, graph checks, early stopping,
transfer, the fit loop, model files). ``CGCNNRegressor`` is ``RegressorMixin +
_RegressionTask + _CGCNNBase``; ``ALIGNNRegressor`` is ``RegressorMixin + _RegressionTask +
_ALIGNNBase``, which adds bond vectors and a line graph to the packed graphs through the
base's ``_graph_build_options`` and ``_finish_packing`` hooks.

A new network joins with a network module (a torch module with ``config`` and
``from_config``) and an estimator module (a model base, and each estimator class decorated
with :func:`register_estimator`). Model files (:func:`load_model`), ``crysatom train --model``
and the training pipelines then find it in the registry (:func:`available_networks`,
:func:`get_estimator`); no other file changes.
"""

from crysatom_featurizers.estimators._persist import ModelFileError, is_safe_model_file, load_model
from crysatom_featurizers.estimators._registry import (
    available_networks,
    get_estimator,
    register_estimator,
)
from crysatom_featurizers.estimators.classifier import ALIGNNClassifier, CGCNNClassifier
from crysatom_featurizers.estimators.regressor import ALIGNNRegressor, CGCNNRegressor

__all__ = [
    "ALIGNNClassifier",
    "ALIGNNRegressor",
    "CGCNNClassifier",
    "CGCNNRegressor",
    "ModelFileError",
    "available_networks",
    "get_estimator",
    "is_safe_model_file",
    "load_model",
    "register_estimator",
]
