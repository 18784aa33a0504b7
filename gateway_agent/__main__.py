from gateway_agent.main import main

main()
