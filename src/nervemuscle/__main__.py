import sys

from nervemuscle.cli import main

sys.exit(main())
