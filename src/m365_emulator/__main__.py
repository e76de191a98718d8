from m365_emulator.cli import main

raise SystemExit(main())
