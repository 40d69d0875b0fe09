from dashboard.sidecar.main import main

main()
