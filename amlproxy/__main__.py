import sys

from amlproxy.cli import main

sys.exit(main())
