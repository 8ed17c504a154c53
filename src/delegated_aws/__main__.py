"""``python -m delegated_aws`` runs the command line."""

from delegated_aws.cli import main

raise SystemExit(main())
