"""Shared fixtures for the audit engine's tests."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

ADULT = Path(__file__).resolve().parents[2] / "audits" / "datasets" / "adult.data"
ADULT_COLUMNS = [
    "age", "workclass", "fnlwgt", "education", "education-num", "marital-status", "occupation", "relationship",
    "race", "sex", "capital-gain", "capital-loss", "hours-per-week", "native-country", "income",
]  # fmt: skip
ADULT_FEATURES = ["age", "education-num", "capital-gain", "capital-loss", "hours-per-week"]
FAVOURABLE = ">50K"


@pytest.fixture(scope="session")
def adult_predictions() -> dict:
    """A logistic regression's labels and probabilities on UCI Adult, read with pandas straight from the shipped
    file (independently of audits.reference): the real data the figures are checked on."""
    frame = pd.read_csv(ADULT, header=None, names=ADULT_COLUMNS, skipinitialspace=True)
    x = frame[ADULT_FEATURES].to_numpy(dtype=float)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(x, frame["income"].to_numpy())
    return {
        "frame": frame,
        "y_true": frame["income"].to_numpy(dtype=object),
        "y_pred": model.predict(x).astype(object),
        "proba": model.predict_proba(x)[:, list(model.classes_).index(FAVOURABLE)],
        "sensitive": {a: frame[a].to_numpy(dtype=object) for a in ("sex", "race")},
    }
