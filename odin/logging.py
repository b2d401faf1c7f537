"""Only for odin/run.py and odin/store.py until they import `scrub` from odin.secrets; then delete this file.

The loggers are in odin/loggers.py: a module named `logging` inside the package shadows the standard
library's for any script run from odin/, and for tools that resolve imports by file.
"""

from odin.secrets import scrub

__all__ = ["scrub"]
