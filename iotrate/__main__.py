from iotrate.cli import main

main()
