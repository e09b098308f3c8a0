from blocklearn.cli import main

main()
