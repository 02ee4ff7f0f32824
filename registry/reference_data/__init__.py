"""Reference data sets an administrator uploads, beside the engine's shipped library (``audits/datasets``)."""
