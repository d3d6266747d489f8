"""``tympan demo``: the DCASE23 story end to end on the embedded generated data (see :mod:`.pipeline`)."""

from .pipeline import DemoConfig, DemoResult, run_demo

__all__ = ["DemoConfig", "DemoResult", "run_demo"]
