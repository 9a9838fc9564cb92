from imacsr_cli.cli.app import main

main()
