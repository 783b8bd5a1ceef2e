"""`python -m imgcdn_bench [--quick] [--rows 1,2,...]`: run the benchmarks, write the report."""

from __future__ import annotations

import sys

from imgcdn_bench.run import main

if __name__ == "__main__":
    sys.exit(main())
