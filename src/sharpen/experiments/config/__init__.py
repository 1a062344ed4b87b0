"""Experiment configuration, one job per file:

- :mod:`.schema`: every key (``RunConfig``, ``Experiment``, ``Claim``) and ``sharpen keys``
- :mod:`.loading`: files, profiles, ``--set`` overrides, grids and run directories
- :mod:`.validation`: checks across keys, the model built once by ``build_model``
- :mod:`.messages`: pydantic's errors rewritten to name the field
"""

from sharpen.experiments.config.loading import (
    BUNDLED_DIR,
    build_experiment,
    find_experiment,
    list_bundled,
    load_experiment,
    load_run_dir,
    parse_value,
    read_file,
    set_dotted,
)
from sharpen.experiments.config.schema import (
    EXPERIMENT_KEYS,
    EXPERIMENT_MEANINGS,
    RUN_KEYS,
    Claim,
    Experiment,
    HookSpec,
    RunConfig,
    key_table,
)

__all__ = ["BUNDLED_DIR", "EXPERIMENT_KEYS", "EXPERIMENT_MEANINGS", "RUN_KEYS", "Claim",
           "Experiment", "HookSpec", "RunConfig", "build_experiment", "find_experiment",
           "key_table", "list_bundled", "load_experiment", "load_run_dir", "parse_value",
           "read_file", "set_dotted"]
