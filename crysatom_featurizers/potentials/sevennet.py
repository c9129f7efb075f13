"""SevenNet-0 (Park et al. 2024) as a
:class:`~crysatom_featurizers.potentials.base.UniversalPotential`.

The checkpoint ships inside the ``sevenn`` wheel, so it runs offline.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from crysatom_featurizers.potentials.base import (
    EV_PER_A3_TO_GPA,
    PotentialResult,
    UniversalPotential,
)

__all__ = ["SevenNetPotential"]


class SevenNetPotential(UniversalPotential):
    """SevenNet-0 (11Jul2024): 128-dim site vectors (the scalar, l = 0, node features of the
    last interaction block, read at the input of the energy read-out), energy per atom and
    stress. It has no crystal vector and predicts no magnetic moments."""

    name = "sevennet"
    site_dim = 128
    crystal_dim = 0
    has_magmom = False
    citation = (
        "@article{park2024sevennet,\n"
        "  title = {Scalable Parallel Algorithm for Graph Neural Network Interatomic Potentials "
        "in Molecular Dynamics Simulations},\n"
        "  author = {Park, Yutack and Kim, Jaesun and Hwang, Seungwoo and Han, Seungwu},\n"
        "  journal = {Journal of Chemical Theory and Computation},\n"
        "  volume = {20},\n"
        "  number = {11},\n"
        "  pages = {4857--4868},\n"
        "  year = {2024},\n"
        "  doi = {10.1021/acs.jctc.4c00190}\n"
        "}"
    )
    info = {
        "package": "sevenn",
        "model_version": "7net-0 (11Jul2024)",
        "parameters": 842623,
        "license": "MIT (MDIL-SNU/SevenNet); the checkpoint ships in the wheel",
        "training_data": "MPtrj: ~1.58 M frames of Materials Project relaxations (energies, "
        "forces, stresses)",
        "leak_class": "potential",
        "cutoff": 5.0,
    }

    def _load(self) -> Any:
        import warnings

        import sevenn._keys as keys
        import sevenn.util

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            checkpoint = sevenn.util.load_checkpoint("7net-0")
            model = checkpoint.build_model()
        model.set_is_batch_data(True)
        model.eval()
        self._cutoff = float(checkpoint.config[keys.CUTOFF])
        self._type_map = dict(checkpoint.config[keys.TYPE_MAP])
        captured: dict[str, Any] = {}

        def capture(_module: Any, args: tuple) -> None:
            captured["x"] = args[0]["x"]

        model._modules["reduce_input_to_hidden"].register_forward_pre_hook(capture)
        self._captured = captured
        return model

    def _supported_z(self) -> set[int]:
        _ = self.model
        return {int(z) for z in self._type_map}

    def _prepare(self, structure: Any, allow_isolated: bool = False) -> Any:
        from pymatgen.io.ase import AseAtomsAdaptor
        from sevenn.atom_graph_data import AtomGraphData
        from sevenn.train.dataload import unlabeled_atoms_to_graph

        _ = self.model
        atoms = AseAtomsAdaptor.get_atoms(structure)
        data = AtomGraphData.from_numpy_dict(unlabeled_atoms_to_graph(atoms, self._cutoff))
        centers = data.edge_index[0].numpy() if data.edge_index.numel() else np.zeros(0, int)
        if not allow_isolated and len(np.unique(centers)) < len(structure):
            raise ValueError(
                f"{structure.composition.reduced_formula}: a site has no neighbour within "
                f"SevenNet's {self._cutoff:g} Å cutoff (an isolated atom); SevenNet cannot "
                "evaluate it"
            )
        return data

    def _run(self, prepared: Sequence[Any], *, stress: bool) -> list[PotentialResult]:
        import sevenn._keys as keys
        import torch
        from torch_geometric.data import Batch

        batch = Batch.from_data_list(list(prepared))
        model = self.model
        force_output = model._modules.get("force_output")
        if stress:
            output = model(batch)
        else:  # the energy and the features need no backward pass
            with torch.no_grad():
                data = model._preprocess(batch)
                for name, module in model._modules.items():
                    if name != "force_output" or force_output is None:
                        data = module(data)
                output = data
        features = self._captured["x"].detach().numpy().astype(np.float32)
        counts = output[keys.NUM_ATOMS].detach().numpy().astype(int)
        energies = output[keys.PRED_TOTAL_ENERGY].detach().numpy().reshape(-1) / counts
        stresses = None
        if stress:
            voigt = -output[keys.PRED_STRESS].detach().numpy() * EV_PER_A3_TO_GPA
            stresses = np.empty((len(prepared), 3, 3))
            for k, (a, b) in enumerate(((0, 0), (1, 1), (2, 2), (0, 1), (1, 2), (0, 2))):
                stresses[:, a, b] = stresses[:, b, a] = voigt[:, k]
        offsets = np.concatenate([[0], np.cumsum(counts)])
        return [
            PotentialResult(
                site_features=features[offsets[i] : offsets[i + 1]],
                crystal_feature=None,
                energy=float(energies[i]),
                stress=None if stresses is None else stresses[i],
                magmom=None,
            )
            for i in range(len(prepared))
        ]
