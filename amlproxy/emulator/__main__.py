"""``python -m amlproxy.emulator serve ...``"""

from amlproxy.emulator.cli import main

raise SystemExit(main())
