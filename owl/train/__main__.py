"""`python -m owl.train STAGE ...` and `accelerate launch -m owl.train STAGE ...`."""

import sys

from owl.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
