import sys

from formal_transformers.cli import main

sys.exit(main())
