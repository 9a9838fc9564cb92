import sys

from imacsr_cli.train.loop import main

sys.exit(main(sys.argv[1:]))
