from hubstream_cli import main

main()
