print("agent-sidecar")
