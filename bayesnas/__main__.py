from bayesnas.cli import main

main()
