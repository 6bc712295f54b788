import sys

from runwise.server import main

sys.exit(main())
