"""Fixtures the model tests share: the digits split and the bundled MLP's float weights, trained
once for the whole suite (tests/conftest.py sets BITFAB_CACHE)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from torch import nn

import models

SHARED_WEIGHTS = Path(os.environ.get("BITFAB_CACHE", ".bitfab_cache")) / "models"


@pytest.fixture(scope="module")
def split() -> models.Split:
    return models.digits()


@pytest.fixture(scope="module")
def mlp(split: models.Split) -> nn.Module:
    return models.float_model("mlp", split, cache=SHARED_WEIGHTS)
