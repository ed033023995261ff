"""`python -m search.cli ...` is `convtune ...`."""

import sys

from search.cli.main import main

sys.exit(main())
