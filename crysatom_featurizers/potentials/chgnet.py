"""CHGNet (Deng et al. 2023) as a :class:`~crysatom_featurizers.potentials.base.UniversalPotential`.

The weights (model 0.3.0) ship inside the ``chgnet`` wheel, so it runs offline.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from crysatom_featurizers.potentials.base import PotentialResult, UniversalPotential

__all__ = ["CHGNetPotential"]


class CHGNetPotential(UniversalPotential):
    """CHGNet 0.3.0: 64-dim site vectors (the atom features before the last convolution, as
    CHGNet returns them), a 64-dim crystal vector (the mean over sites of the last
    convolution's atom features: CHGNet's ``crystal_fea`` divided by the number of sites),
    energy per atom, stress and magnetic moments."""

    name = "chgnet"
    site_dim = 64
    crystal_dim = 64
    has_magmom = True
    citation = (
        "@article{deng2023chgnet,\n"
        "  title = {{CHGNet} as a pretrained universal neural network potential for "
        "charge-informed atomistic modelling},\n"
        "  author = {Deng, Bowen and Zhong, Peichen and Jun, KyuJung and Riebesell, Janosh and "
        "Han, Kevin and Bartel, Christopher J. and Ceder, Gerbrand},\n"
        "  journal = {Nature Machine Intelligence},\n"
        "  volume = {5},\n"
        "  pages = {1031--1041},\n"
        "  year = {2023},\n"
        "  doi = {10.1038/s42256-023-00716-3}\n"
        "}"
    )
    info = {
        "package": "chgnet",
        "model_version": "0.3.0",
        "parameters": 412525,
        "license": "modified BSD (CederGroupHub/chgnet); weights ship in the wheel",
        "training_data": "MPtrj: ~1.58 M frames of Materials Project relaxations of ~146 k "
        "materials (energies, forces, stresses, magnetic moments)",
        "leak_class": "potential",
        "cutoff": 6.0,
    }

    def _load(self) -> Any:
        import contextlib
        import io

        from chgnet.model import CHGNet

        with contextlib.redirect_stdout(io.StringIO()):  # CHGNet prints a banner
            model = CHGNet.load(model_name="0.3.0", use_device="cpu", verbose=False)
        model.eval()
        return model

    def _supported_z(self) -> set[int]:
        return set(range(1, 95))

    def _prepare(self, structure: Any, allow_isolated: bool = False) -> Any:
        converter = self.model.graph_converter
        previous = converter.on_isolated_atoms
        try:
            if allow_isolated:
                converter.on_isolated_atoms = "ignore"
            return converter(structure, graph_id=structure.formula)
        except ValueError as exc:
            if "isolated atom" in str(exc):
                raise ValueError(
                    f"{structure.composition.reduced_formula}: a site has no neighbour within "
                    f"CHGNet's {self.info['cutoff']:g} Å cutoff (an isolated atom); CHGNet "
                    "cannot evaluate it"
                ) from None
            raise
        finally:
            converter.on_isolated_atoms = previous

    def _run(self, prepared: Sequence[Any], *, stress: bool) -> list[PotentialResult]:
        import torch

        task = "efsm" if stress else "em"
        context = torch.enable_grad() if stress else torch.no_grad()
        with context:
            outputs = self.model.predict_graph(
                list(prepared),
                task=task,
                return_atom_feas=True,
                return_crystal_feas=True,
                batch_size=len(prepared),
            )
        if isinstance(outputs, dict):
            outputs = [outputs]
        return [
            PotentialResult(
                site_features=np.asarray(out["atom_fea"], dtype=np.float32),
                # CHGNet sums the last convolution's atom features; their mean is intensive,
                # so a supercell gets the vector of its cell
                crystal_feature=(
                    np.asarray(out["crystal_fea"], dtype=np.float64) / len(out["atom_fea"])
                ).astype(np.float32),
                energy=float(out["e"]),
                stress=np.asarray(out["s"], dtype=np.float64) if stress else None,
                magmom=np.asarray(out["m"], dtype=np.float32).reshape(-1),
            )
            for out in outputs
        ]
