"""matminer featurizers built on element embeddings (no torch import).

* :class:`ElementEmbeddingSiteFeaturizer`: the vector of one site.
* :class:`ElementEmbeddingCompositionFeaturizer`: fraction-weighted statistics of element
  vectors (matminer ``PropertyStats`` definitions).
* :class:`ElementEmbeddingStructureFeaturizer`: statistics of site vectors pooled over a
  structure.
* :class:`EmbeddingElementData`: a data source for matminer's ``ElementProperty``.
* :class:`UniversalPotentialSiteFeaturizer`, :class:`UniversalPotentialStructureFeaturizer`:
  latent vectors and predictions of a universal interatomic potential (CHGNet, SevenNet;
  the ``[potentials]`` extra).

Each generic featurizer has preset subclasses that always use one embedding: ``CrysAtom*``,
``Atom2Vec*``, ``SkipAtom*`` and ``Random*`` (they take ``dim`` and the other options, never
``embedding``). Any registry embedding is also available as
``ElementEmbedding*Featurizer.from_preset(name, **kwargs)``, matminer's convention.
"""

from crysatom_featurizers.featurizers._chemistry import clear_formula_cache
from crysatom_featurizers.featurizers._stats import STAT_ALIASES
from crysatom_featurizers.featurizers.base import CRYSATOM_CITATION, ElementEmbeddingFeaturizer
from crysatom_featurizers.featurizers.composition import (
    DEFAULT_STATS,
    Atom2VecCompositionFeaturizer,
    CrysAtomCompositionFeaturizer,
    ElementEmbeddingCompositionFeaturizer,
    RandomCompositionFeaturizer,
    SkipAtomCompositionFeaturizer,
)
from crysatom_featurizers.featurizers.data_source import CrysAtomElementData, EmbeddingElementData
from crysatom_featurizers.featurizers.potential import (
    PHYSICS_FEATURES,
    UniversalPotentialSiteFeaturizer,
    UniversalPotentialStructureFeaturizer,
)
from crysatom_featurizers.featurizers.site import (
    Atom2VecSiteFeaturizer,
    CrysAtomSiteFeaturizer,
    ElementEmbeddingSiteFeaturizer,
    RandomSiteFeaturizer,
    SkipAtomSiteFeaturizer,
)
from crysatom_featurizers.featurizers.structure import (
    Atom2VecStructureFeaturizer,
    CrysAtomStructureFeaturizer,
    ElementEmbeddingStructureFeaturizer,
    RandomStructureFeaturizer,
    SkipAtomStructureFeaturizer,
)

__all__ = [
    "CRYSATOM_CITATION",
    "DEFAULT_STATS",
    "PHYSICS_FEATURES",
    "STAT_ALIASES",
    "Atom2VecCompositionFeaturizer",
    "Atom2VecSiteFeaturizer",
    "Atom2VecStructureFeaturizer",
    "CrysAtomCompositionFeaturizer",
    "CrysAtomElementData",
    "CrysAtomSiteFeaturizer",
    "CrysAtomStructureFeaturizer",
    "ElementEmbeddingCompositionFeaturizer",
    "ElementEmbeddingFeaturizer",
    "ElementEmbeddingSiteFeaturizer",
    "ElementEmbeddingStructureFeaturizer",
    "EmbeddingElementData",
    "RandomCompositionFeaturizer",
    "RandomSiteFeaturizer",
    "RandomStructureFeaturizer",
    "SkipAtomCompositionFeaturizer",
    "SkipAtomSiteFeaturizer",
    "SkipAtomStructureFeaturizer",
    "UniversalPotentialSiteFeaturizer",
    "UniversalPotentialStructureFeaturizer",
    "clear_formula_cache",
]
