import sys

from imacsr_cli.cli.app import main

sys.exit(main())
