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
``predict``), a model base that builds the network (``_build_model``) and checks its own
parameters (``_check_model_params``), and the graph-estimator base that holds everything else:
validation, graphs (one :class:`~crysatom_featurizers.graphs.GraphSettings`), early stopping,
fine-tuning and distillation, pickling. ``CGCNNRegressor`` is ``RegressorMixin +
_RegressionTask + _CGCNNBase``, ``ALIGNNRegressor`` is ``RegressorMixin + _RegressionTask +
_ALIGNNBase`` (which adds bond vectors and a line graph to the packed graphs through the
base's ``_graph_build_options`` and ``_finish_packing`` hooks); another network joins with its own model base and an
``__init__`` listing its parameters.
"""

from crysatom_featurizers.estimators._persist import ModelFileError, is_safe_model_file, load_model
from crysatom_featurizers.estimators.classifier import ALIGNNClassifier, CGCNNClassifier
from crysatom_featurizers.estimators.regressor import ALIGNNRegressor, CGCNNRegressor

__all__ = [
    "ALIGNNClassifier",
    "ALIGNNRegressor",
    "CGCNNClassifier",
    "CGCNNRegressor",
    "ModelFileError",
    "is_safe_model_file",
    "load_model",
]
