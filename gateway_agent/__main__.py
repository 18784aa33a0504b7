from gateway_agent.cli import main

main()
