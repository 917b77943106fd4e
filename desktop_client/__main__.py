"""`python -m desktop_client` is `lien-desktop`."""

from __future__ import annotations

from desktop_client.app import main

raise SystemExit(main())
