"""``python -m kinesis_actors._cli``: the kinesis-actors command."""

from __future__ import annotations

import sys

from kinesis_actors._cli import main

sys.exit(main())
