import logging
import os
import sys

from imacsr_cli.train.loop import main

code = main(sys.argv[1:])
# Every file of the run is written and fsynced by now. Skipping the interpreter's teardown (torch's
# is ~0.6 s) frees the scheduler's slot sooner.
logging.shutdown()
sys.stdout.flush()
sys.stderr.flush()
os._exit(code)
