import sys

from rmaplab.cli import main

sys.exit(main())
