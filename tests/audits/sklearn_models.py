"""scikit-learn models for the audit tests, exported to ONNX the way a city team would (skl2onnx, no ZipMap)."""

from __future__ import annotations

import warnings

import numpy as np
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType, StringTensorType
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from audits import reference


def export(model, initial_types, path):
    """Write ``model`` as ONNX to ``path`` (opset 17, ai.onnx.ml 3, probabilities as a tensor) and return the path."""
    final = model.steps[-1][1] if hasattr(model, "steps") else model
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # converter chatter is not under test
        onx = convert_sklearn(
            model,
            initial_types=initial_types,
            options={id(final): {"zipmap": False}},
            target_opset={"": 17, "ai.onnx.ml": 3},
        )
    path.write_bytes(onx.SerializeToString())
    return path


def adult_logistic(categorical: list[str], numeric: list[str], *, max_iter: int, path):
    """A logistic regression trained on Adult (train) with one ONNX input per column and string labels:
    the fitted pipeline and the path of its ONNX file."""
    train = reference.load("adult")
    pipe = Pipeline(
        [
            (
                "prep",
                ColumnTransformer(
                    [("cat", OneHotEncoder(handle_unknown="ignore"), categorical), ("num", StandardScaler(), numeric)]
                ),
            ),
            ("clf", LogisticRegression(max_iter=max_iter)),
        ]
    )
    pipe.fit(train.features[categorical + numeric], np.where(train.y_true, ">50K", "<=50K"))
    types = [(c, StringTensorType([None, 1])) for c in categorical] + [(c, FloatTensorType([None, 1])) for c in numeric]
    return pipe, export(pipe, types, path)
