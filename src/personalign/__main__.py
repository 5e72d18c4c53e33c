"""`python -m personalign ...`: the command line (used by `accelerate launch -m personalign train ...`)."""

from .cli import main

if __name__ == "__main__":
    main()
