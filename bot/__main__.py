"""`python -m bot` is the same as the `rollbot` command."""

from bot.cli import main

raise SystemExit(main())
