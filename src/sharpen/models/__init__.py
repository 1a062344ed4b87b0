"""Model registry: ``create_model(name, **kw)``, ``list_models()``."""

from sharpen.models import cifar, lenet, pairs, vgg  # noqa: F401  (registers their models)
from sharpen.models._registry import (
    count_parameters,
    create_model,
    list_models,
    model_input,
    model_paper,
    register_model,
)

__all__ = ["create_model", "list_models", "register_model", "count_parameters", "model_paper",
           "model_input"]
