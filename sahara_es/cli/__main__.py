from sahara_es.cli.main import main

main()
