from hubstream.cli import main

main()
