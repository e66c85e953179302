import sys

from livecount.cli import main

sys.exit(main())
