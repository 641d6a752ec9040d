"""`python -m owl.train STAGE ...` and `accelerate launch -m owl.train STAGE ...`."""

import argparse
import sys

from owl.console import run_command
from owl.train.commands import add_stage_arguments

if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m owl.train", description="Train one stage of Owl.")
    add_stage_arguments(parser)
    args = parser.parse_args()
    sys.exit(run_command(args.func, args))
