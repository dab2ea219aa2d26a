print("agent-gateway")
