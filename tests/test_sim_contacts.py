"""Contact matrices: Prem et al.'s spectral-radius ratios for the Wuhan interventions."""

import numpy as np
import pytest

from engine.sim.contacts import ContactMatrices, china_all, spectral_radius, symmetrise, wuhan_population


def test_all_is_sum_of_locations():
    cm = ContactMatrices.china()
    np.testing.assert_allclose(cm.total(), china_all(), atol=1e-8)


@pytest.mark.parametrize("work,expected", [(0.1, 0.2456), (0.25, 0.2909), (0.5, 0.3741), (0.9, 0.5172)])
def test_prem_intervention_ratios(work, expected):
    """Unsymmetrised matrices, home 1, school 0, other 0.1, work as given (documented in contacts.py)."""
    cm = ContactMatrices.china()
    ratio = spectral_radius(cm.mixing(work=work, school=0.0, other=0.1)) / spectral_radius(cm.total())
    assert round(ratio, 4) == expected


def test_symmetrised_matrices_do_not_give_those_numbers():
    p = wuhan_population()
    cm = ContactMatrices.china()
    sym = ContactMatrices(np.stack([symmetrise(c, p) for c in cm.by_location]))
    ratio = spectral_radius(sym.mixing(work=0.1, school=0.0, other=0.1)) / spectral_radius(sym.total())
    assert round(ratio, 4) == 0.2482


def test_homogeneous_mixing_and_validation():
    cm = ContactMatrices.homogeneous(12.0, wuhan_population() / wuhan_population().sum())
    assert spectral_radius(cm.total()) == pytest.approx(12.0)
    with pytest.raises(ValueError, match="shape"):
        ContactMatrices(np.ones((3, 16, 16)))
    with pytest.raises(ValueError, match="multiplier for work"):
        cm.mixing(work=-1)
