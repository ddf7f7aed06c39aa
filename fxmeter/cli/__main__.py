from fxmeter.cli.main import main

main()
