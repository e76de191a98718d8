from mailvault.cli import main

main()
