from bgpd.cli import main

raise SystemExit(main())
