"""`python -m ahms_fm.sweep`: the same as `ahms-fm sweep`."""

import sys

from ahms_fm.sweep import run

sys.exit(run())
