"""fedntc ServerApp: FedAvg over the shared transforms, results and checkpoints."""
